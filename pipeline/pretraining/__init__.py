"""The `pretrain` stage's wing: the synthetic still-caption corpus, the contrastive loop, the zero-shot test."""

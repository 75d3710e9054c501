"""The arrays ``grizal.encoders.priors.encode_class_priors`` makes per class, by name: what a priors store holds
and the model reads. Kept apart from the encoders so that reading a store does not import them."""

PRIOR_ARRAYS = ("joint", "joint_mask", "token_type", "name_tokens", "name_mask", "name_embedding", "text_embedding",
                "image_embedding")

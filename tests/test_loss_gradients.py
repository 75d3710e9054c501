"""benchmarks.loss_gradients runs on the tiny world and reports every term's share of the gradient."""

import re
import sys

import yaml
from support.params_edit import grid_values

from benchmarks import loss_gradients


def test_every_term_gets_a_share_and_the_shares_sum_to_one(tiny_world, tmp_path, monkeypatch, capsys):
    values = grid_values(tiny_world)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(values))
    monkeypatch.setattr(sys, "argv", ["loss_gradients", "--params", str(tmp_path / "params.yaml"), "--prepare",
                                      str(tiny_world["root"] / "prepare"), "--features", str(tiny_world["features"]),
                                      "--epochs", "2", "--every", "1", "--probe-batches", "1"])
    loss_gradients.main()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("after epoch")]
    assert [line.split(":")[0] for line in lines] == ["after epoch 0", "after epoch 1", "after epoch 2"]
    for line in lines:
        shares = [float(s) for s in re.findall(r"grad share ([\d.]+)%", line)]
        assert re.findall(r"(\w+) value", line) == ["bce", "tiou", "cosine", "infonce"]
        assert abs(sum(shares) - 100) < 0.5

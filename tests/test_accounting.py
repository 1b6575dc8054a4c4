"""Accounting on the real modules, against the paper's figures."""

import json

import pytest

from inception_v3 import create_model, inception_v3
from inception_v3.cli import main
from inception_v3.models.accounting import factorization_savings, layer_depth, receptive_field_costs, summarize

pytestmark = pytest.mark.xdist_group("accounting")  # its module fixture is built once


@pytest.fixture(scope="module")
def summary() -> dict:
    return summarize(inception_v3(), 299)


def test_totals(summary: dict) -> None:
    assert summary["params"] == 27_161_264
    assert summary["params_without_aux"] == 23_834_568
    assert 5.6e9 < summary["macs"] < 5.8e9  # facts.md: about 5.7 G multiply-adds at 299x299
    assert sum(r["params"] for r in summary["modules"]) == summary["params"]
    rows = {r["name"]: r for r in summary["modules"]}
    assert rows["Mixed_5b"]["output_shape"] == [1, 256, 35, 35]
    assert rows["Mixed_6e"]["output_shape"] == [1, 768, 17, 17]
    assert rows["Mixed_7c"]["output_shape"] == [1, 2048, 8, 8]
    assert rows["Conv2d_1a_3x3"]["macs"] == 149 * 149 * 32 * 27


def test_table2_variants_cost_nearly_the_same() -> None:
    costs = receptive_field_costs(inception_v3().config)
    macs = [c["macs"] for c in costs]
    assert [c["receptive_field"] for c in costs] == [299, 151, 79]
    assert max(macs) / min(macs) < 1.10


def test_factorization_savings_match_the_paper() -> None:
    rows = {r["factorization"].split(" (")[0]: r for r in factorization_savings(inception_v3())}
    assert round(rows["5x5 -> two 3x3"]["saving"], 2) == 0.28
    assert round(rows["3x3 -> 3x1 + 1x3"]["saving"], 2) == 0.33
    assert round(rows["3x3 -> two 2x2"]["saving"], 2) == 0.11
    assert rows["7x7 -> 1x7 + 7x1"]["saving"] == pytest.approx(1 - 14 / 49)
    assert 0 < rows["5x5 -> two 3x3"]["as_built_saving"] < rows["5x5 -> two 3x3"]["saving"]


def test_depth() -> None:
    depth = layer_depth(inception_v3())
    # 5 stem convs + 3 x 3 (Mixed_5) + 3 (6a) + 4 x 5 (Mixed_6) + 4 (7a) + 2 x 3 (Mixed_7) + fc
    assert depth == {"stem_convs": 5, "all_modules": 48, "paper_style": 41}
    assert layer_depth(create_model("inception_v2"))["stem_convs"] == 3


def test_summary_cli_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--preset", "inception_v3_79", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["resolution"] == 79 and data["min_input_size"] == 21
    assert main(["summary"]) == 0
    text = capsys.readouterr().out
    assert "27,161,264" in text and "23,834,568" in text and "5x5 -> two 3x3" in text


def test_cli_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--preset", "nope"]) == 2
    err = capsys.readouterr().err
    assert "valid presets" in err and "Traceback" not in err
    assert main(["summary", "--resolution", "40"]) == 2
    assert "minimum input 75" in capsys.readouterr().err


def test_models_cli_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    names = [r["name"] for r in json.loads(capsys.readouterr().out)]
    assert "inception_v2" in names and "inception_v3_79" in names and "inception_v2_factorized_7x7" in names

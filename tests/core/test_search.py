"""The search language: what each query matches on a known set of runs, and what each bad one says."""

from datetime import datetime

import polars as pl
import pytest

from core.search import Not, SearchError, parse
from core.search_compiler import compile_search, fields, search
from core.search_frame import build_search_frame

NOW = datetime(2026, 3, 1, 12, 0)


def _runs() -> pl.DataFrame:
    """Four runs in two experiments: ids 1-3 in "sentiment LoRA", 4 in "summaries"."""
    return pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "experiment_id": [1, 1, 1, 2],
            "experiment": ["sentiment LoRA", "sentiment LoRA", "sentiment LoRA", "summaries"],
            "name": ["lr-small", "lr-big", "queued one", "sum-1"],
            "status": ["completed", "failed", "queued", "completed"],
            "created_at": [datetime(2026, 1, 10, 9), datetime(2026, 1, 10, 10), datetime(2026, 2, 1), datetime(2026, 2, 2)],
            "started_at": [datetime(2026, 1, 10, 9), datetime(2026, 1, 10, 10), None, datetime(2026, 2, 2)],
            "ended_at": [datetime(2026, 1, 10, 9, 5), datetime(2026, 1, 10, 11), None, None],
            "config": [
                '{"learning_rate": 0.001, "lora_r": 8, "target_modules": ["q_proj", "v_proj"], "fp16": true}',
                '{"learning_rate": 0.1, "lora_r": 16, "fp16": false}',
                '{"learning_rate": 0.01}',
                '{"learning_rate": 0.005, "lora_r": 8}',
            ],
            "note": ["**best** so far", None, None, None],
        }
    )


FRAME = build_search_frame(
    _runs(),
    pl.DataFrame(
        {
            "run_id": [1, 1, 2, 2, 4],
            "key": ["eval_loss", "loss", "eval_loss", "loss", "eval_loss"],
            "last": [0.55, 0.2, 0.9, 3.0, 0.7],
            "min": [0.5, 0.2, 0.58, 0.9, 0.65],
            "max": [1.2, 2.0, 1.3, 3.0, 1.0],
        }
    ),
    pl.DataFrame(
        {
            "run_id": [1, 1, 2, 4],
            "key": ["base", "seed", "base", "base"],
            "value": ["gpt2", "3", "llama", "llama"],
            "own": [1, 1, 0, 1],
        }
    ),
    now=NOW,
)


def matched(query: str) -> list[int]:
    return sorted(search(FRAME, query)["id"].to_list())


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", [1, 2, 3, 4]),
        ("   ", [1, 2, 3, 4]),
        ("params.learning_rate < 0.01", [1, 4]),
        ("params.learning_rate <= 0.01", [1, 3, 4]),
        ("params.learning_rate = 1e-3", [1]),
        ("params.learning_rate == 0.1", [2]),
        ("params.learning_rate != 0.1", [1, 3, 4]),
        ("params.lora_r >= 16", [2]),
        ("params.lora_r in (8, 32)", [1, 4]),
        ("params.lora_r not in (8)", [2, 3]),  # `not in` is `not (... in ...)`: run 3 has no lora_r
        ("params.fp16 = true", [1]),
        ("params.fp16 != TRUE", [2]),
        ('params.target_modules contains "v_proj"', [1]),
        ("metrics.eval_loss < 0.6", [1]),
        ("metrics.eval_loss.last < 0.6", [1]),
        ("metrics.eval_loss.min < 0.6", [1, 2]),
        ("metrics.loss.max >= 3", [2]),
        ('tags.base = "llama"', [2, 4]),
        ("tags.base = llama", [2, 4]),
        ("tags.seed = 3", [1]),
        ("tags.seed > 2.5", [1]),
        ("status = completed", [1, 4]),
        ("status = 'FAILED'", [2]),
        ("status in (queued, failed)", [2, 3]),
        ("name = lr-small", [1]),
        ('name contains "LR"', [1, 2]),
        ('experiment contains "sentiment"', [1, 2, 3]),
        ('experiment = "summaries"', [4]),
        ("created >= 2026-02-01", [3, 4]),
        ("created = 2026-01-10", [1, 2]),
        ("created < 2026-01-10T09:30", [1]),
        ('created > "2026-02-01"', [4]),
        ("duration > 30m", [2, 4]),
        ("duration <= 300", [1]),
        ("duration < 2h and duration > 1s", [1, 2]),
        ('note contains "best"', [1]),
        ("id in (1, 3)", [1, 3]),
        ("not status = completed", [2, 3]),
        ("not tags.base = llama", [1, 3]),
        ("tags.base != llama", [1]),
        ("status = completed or status = failed and params.lora_r = 16", [1, 2, 4]),
        ("(status = completed or status = failed) and params.lora_r = 16", [2]),
        ("not (status = completed or status = queued)", [2]),
        ("not not status = queued", [3]),
        ("STATUS = completed AND Params.lora_r = 8", [1, 4]),
        ("`params.learning_rate` > 0.05", [2]),
        (
            'params.learning_rate < 0.01 and metrics.eval_loss.min < 0.6 and (tags.base = "llama" or status = completed) '
            'and experiment contains "sentiment"',
            [1],
        ),
    ],
)
def test_a_query_matches_exactly_the_runs_it_describes(query, ids):
    assert matched(query) == ids


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("parms.learning_rate < 0.01", "unknown field `parms.learning_rate` at column 1: did you mean `params.learning_rate`?"),
        ("eval_loss < 0.5", "unknown field `eval_loss` at column 1: did you mean `metrics.eval_loss`?"),
        ("metrics.eval_los.min < 1", "unknown field `metrics.eval_los.min` at column 1: did you mean `metrics.eval_loss.min`?"),
        (
            "metrics.eval_loss.median < 1",
            "unknown field `metrics.eval_loss.median` at column 1: did you mean `metrics.eval_loss.min`?",
        ),
        ("tags.bse = llama", "unknown field `tags.bse` at column 1: did you mean `tags.base`?"),
        ("metrics.bleu > 0.5", "unknown field `metrics.bleu` at column 1: no run here has it; its metrics are eval_loss, loss"),
        ("tags.zzzzzz = 1", "unknown field `tags.zzzzzz` at column 1: no run here has it; its tags are base, seed"),
        ("zzz = 1", "unknown field `zzz` at column 1: fields are id, name, status"),
        (
            "sweep",  # what one types into other tools' search boxes
            "expected a comparison after `sweep` (= != < <= > >= in contains); found the end of the search at column 6: "
            'to find runs by name, write: name contains "sweep"',
        ),
        ("own_tags contains base", "unknown field `own_tags` at column 1"),  # the Runs table's cell, not a field
        ("status = compelted", "unknown status `compelted` at column 10: did you mean `completed`?"),
        ("params.lora_r > big", "`big` is not a number at column 17: `params.lora_r` holds numbers"),
        ("metrics.loss < nan", "`nan` is not a number at column 16: `metrics.loss.last` holds numbers"),
        ("params.lora_r != inf", "`inf` is not a number at column 18"),
        ("(" * 200 + "status = queued" + ")" * 200, "the search nests `(` and `not` more than 50 deep; found `(` at column 51"),
        ("not " * 5000 + "status = queued", "the search nests `(` and `not` more than 50 deep; found `not` at column 201"),
        ("created > 3", "`3` is not a date at column 11: `created` holds dates"),
        ("created > 2026-02-30", "`2026-02-30` at column 11 is not a real date"),
        ("name = 3", ""),  # a number against text compares numerically: no error, no match
        ("name = 2026-01-01", "`2026-01-01` is not text at column 8: `name` holds text; put it in quotes"),
        ('params.lora_r contains "8"', "`contains` needs text at column 24: `params.lora_r` holds numbers"),
        ("params.fp16 > true", "`>` cannot order true and false at column 15"),
        ("params.fp16 = yes", "`yes` is not true or false at column 15"),
        ("status", "expected a comparison after `status` (= != < <= > >= in contains); found the end of the search at column 7"),
        ("status completed", "expected a comparison after `status`"),
        ("x" * 10_000, f"expected a comparison after `{'x' * 40}…` (= != < <= > >= in contains); found the end"),
        (
            "status =",
            'expected a value (a number, a "quoted string", a date like 2026-01-31, or a word); found the end of the search at column 9',
        ),
        ("status = )", "expected a value"),
        ("(status = queued", "the `(` at column 1 is never closed; found the end of the search at column 17: expected `)`"),
        ("status = queued)", "unexpected `)` at column 16: no `(` before it is left to close"),
        ("status = queued failed", "unexpected `failed` at column 17: join conditions with `and` or `or`"),
        ("status = queued and", "expected a field such as params.learning_rate"),
        (
            "and status = queued",
            "expected a field such as params.learning_rate, metrics.eval_loss or status; found `and` at column 1",
        ),
        ("status in queued", "expected `(` to open the list after `in`; found `queued` at column 11"),
        ("status in (queued failed)", "expected `,` or `)` in the list after `in`; found `failed` at column 19"),
        ("status in ()", "expected a value"),
        ('name = "unterminated', "the double quote at column 8 is never closed: end the text with another double quote"),
        ("`unclosed", "the backtick at column 1 is never closed"),
        ("duration > 10x", "`10x` at column 12 is not a number or a duration (a duration ends in s, m, h or d)"),
        ("params.learning_rate ~ 0.1", "unexpected `~` at column 22"),
        ("status = queued && status = failed", "unexpected `&` at column 17"),
        ("experiment = Ünïcode", "unexpected `Ü` at column 14: put text with accents, other scripts or symbols in double quotes"),
        ("params.lora_r = 8b", "`8b` at column 17 is not a number or a duration"),
        ("() ", "expected a field"),
        ("not", "expected a field"),
    ],
)
def test_a_query_that_cannot_run_says_what_and_where(query, message):
    if not message:
        assert matched(query) == []
        return
    with pytest.raises(SearchError) as raised:
        search(FRAME, query)
    assert str(raised.value).startswith(message)


def test_an_error_carries_the_column_of_the_token_at_fault():
    with pytest.raises(SearchError) as raised:
        parse("status = queued and params.lr > x y")
    assert raised.value.column == 35


def test_and_binds_tighter_than_or_and_not_tighter_than_and():
    tree = parse("not a = 1 or b = 2 and c = 3")

    assert tree.op == "or"
    assert isinstance(tree.operands[0], Not)
    assert tree.operands[1].op == "and"


def test_the_compiled_query_lists_the_columns_it_names():
    compiled = compile_search("metrics.eval_loss < 1 and tags.base = llama or metrics.eval_loss.min > 0", FRAME.schema)

    assert compiled.columns == ("metrics.eval_loss.last", "tags.base", "metrics.eval_loss.min")


def test_fields_offer_metrics_by_key_and_each_of_their_parts():
    offered = fields(FRAME.schema)

    assert {"metrics.eval_loss", "metrics.eval_loss.min", "metrics.eval_loss.max", "params.lora_r", "tags.seed"} <= set(offered)
    assert "experiment_id" not in offered


def test_the_frame_has_one_row_per_run_newest_first_with_inherited_tags_and_durations():
    assert FRAME["id"].to_list() == [4, 3, 2, 1]
    by_id = {row["id"]: row for row in FRAME.to_dicts()}
    assert by_id[2]["tags.base"] == "llama"  # from its experiment (own = 0)
    assert by_id[1]["duration"] == 300.0
    assert by_id[4]["duration"] == (NOW - datetime(2026, 2, 2)).total_seconds()  # still running: until now
    assert by_id[3]["duration"] is None
    assert by_id[1]["params.target_modules"] == "q_proj, v_proj"
    assert FRAME.schema["params.lora_r"] == pl.Int64


def test_a_run_s_own_tag_beats_its_experiment_s():
    frame = build_search_frame(
        _runs(),
        pl.DataFrame(schema={"run_id": pl.Int64, "key": pl.String, "last": pl.Float64, "min": pl.Float64, "max": pl.Float64}),
        pl.DataFrame({"run_id": [1, 1], "key": ["base", "base"], "value": ["own", "inherited"], "own": [1, 0]}),
        now=NOW,
    )

    assert frame.filter(pl.col("id") == 1)["tags.base"].to_list() == ["own"]


def _frame_of_configs(*configs: str) -> pl.DataFrame:
    runs = _runs().head(len(configs)).with_columns(config=pl.Series(configs))
    no_metrics = pl.DataFrame(schema={"run_id": pl.Int64, "key": pl.String, "last": pl.Float64, "min": pl.Float64, "max": pl.Float64})
    no_tags = pl.DataFrame(schema={"run_id": pl.Int64, "key": pl.String, "value": pl.String, "own": pl.Int64})
    return build_search_frame(runs, no_metrics, no_tags, now=NOW).sort("id")


def test_a_param_that_is_an_object_in_one_run_and_text_in_another_is_searched_as_text():
    """One script's `log_params({"optimizer": {...}})` failed every search of the store ("error deserializing JSON")."""
    frame = _frame_of_configs(
        '{"optimizer": "adamw", "lr": 0.1, "fp16": true}',
        '{"optimizer": {"name": "adamw", "betas": [0.9, 0.999]}, "lr": 1, "fp16": false}',
        '{"lr": 0.01, "layers": ["q", 1]}',
    )

    assert frame["params.optimizer"].to_list() == ["adamw", '{"name":"adamw","betas":[0.9,0.999]}', None]
    assert frame["params.lr"].to_list() == [0.1, 1.0, 0.01]
    assert frame["params.fp16"].to_list() == [True, False, None]
    assert frame["params.layers"].to_list() == [None, None, "q, 1"]
    assert search(frame, 'params.optimizer = "adamw"')["id"].to_list() == [1]
    assert search(frame, "params.lr > 0.5")["id"].to_list() == [2]


def test_a_run_without_an_object_param_others_have_lacks_it_rather_than_holding_null_text():
    frame = _frame_of_configs('{"optimizer": {"name": "adamw"}}', '{"lr": 0.1}')

    assert frame["params.optimizer"].to_list() == ['{"name":"adamw"}', None]


def test_the_value_by_value_reading_types_columns_as_the_fast_one_does():
    """An object param elsewhere in the table turned an all-null param Boolean and a 2**64 one Int128."""
    frame = _frame_of_configs(
        '{"o": "x", "none": null, "big": 18446744073709551616, "n": 3}', '{"o": {"k": 1}, "none": null, "big": 1, "n": 4}'
    )

    assert frame.schema["params.none"] == pl.String and frame["params.none"].to_list() == [None, None]
    assert frame["params.big"].to_list() == ["18446744073709551616", "1"]
    assert frame.schema["params.n"] == pl.Int64

"""Sweeps: many runs from one form, as a grid (every combination) or a random search (a count of draws).

A sweep is written one setting per line:

    learning_rate = 1e-3, 3e-3, 1e-2     values: a grid tries each, a random search picks among them
    learning_rate = [1e-3, 3e-3]         the same, written as a list
    lora_rank = 4 .. 32                   a range (random search only): whole numbers for whole-number settings
    learning_rate = 1e-4 .. 1e-2 log      drawn evenly on a log scale

Every combination is checked by TrainingConfig before any run is stored, so a bad one starts nothing.
"""

import difflib
import itertools
import math
import random
import re
import typing
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import ValidationError
from core.training_config import TrainingConfig, defaults_for, fields_for
from core.validation import as_typed, friendly

MAX_SWEEP_RUNS = 50  # runs one sweep may start at once: a typo in a grid should not queue thousands
Mode = Literal["grid", "random"]
_RANGE = re.compile(r"^(?P<low>\S+)\s*\.\.\s*(?P<high>\S+?)(?P<log>\s+log)?$")


@dataclass(frozen=True)
class Range:
    """Bounds a random search draws a setting from: evenly, or evenly in log space; whole numbers if `integer`."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def draw(self, rng: random.Random) -> float | int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return round(value) if self.integer else float(f"{value:.4g}")


Axis = list[Any] | Range


def parse_axes(text: str, trainer: str) -> dict[str, Axis]:
    """The sweep's lines as {setting: values or Range}; each mistake names its line and what to write."""
    axes: dict[str, Axis] = {}
    known = [name for name in fields_for(trainer) if name != "resume_from_run"]
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        name, equals, raw = (part.strip() for part in line.partition("="))
        where = f"line {number} ({line.strip()[:60]!r})"
        if not equals or not raw:
            raise ValidationError(f"{where}: write a setting, '=' and its values, e.g. 'learning_rate = 1e-3, 3e-3'")
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the {trainer} trainer's settings are {', '.join(known)}"
            raise ValidationError(f"{where}: {name[:40]!r} is not a setting of the {trainer} trainer; {hint}")
        if name in axes:
            raise ValidationError(f"{where}: {name} is swept twice; put all its values on one line")
        axes[name] = _axis(name, raw, where)
        _check_values(name, axes[name], trainer, where)
    return axes


def _check_values(name: str, axis: Axis, trainer: str, where: str) -> None:
    """Each value (a range's bounds) as the setting takes it, so the preview flags 'abc' before Start is pressed."""
    for value in (axis.low, axis.high) if isinstance(axis, Range) else axis:
        try:
            friendly(TrainingConfig, defaults_for(trainer) | {"trainer": trainer, name: value}, "training config")
        except ValidationError as error:
            if name in error.field_errors:  # about this setting alone, not how it goes with the others
                raise ValidationError(f"{where}: {name} {error.field_errors[name]}, not {_shown(value)}") from None


def _shown(value: Any) -> str:
    """A number as typed (a range's bound 0, not 0.0: bounds are read as floats), anything else quoted."""
    return as_typed(value) if isinstance(value, int | float) and not isinstance(value, bool) else repr(value)


def _axis(name: str, raw: str, where: str) -> Axis:
    if raw.startswith("[") and raw.endswith("]"):  # a list as Python, YAML or a W&B sweep writes it
        raw = raw[1:-1].strip()
    found = _RANGE.match(raw)
    if found is None:
        values = [_value(part.strip()) for part in raw.split(",") if part.strip()]
        if not values:
            raise ValidationError(f"{where}: give at least one value")
        repeated = [value for value in dict.fromkeys(values) if values.count(value) > 1]
        if repeated:  # said, not dropped: "1 run" for three values listed reads as a mistake
            raise ValidationError(f"{where}: {', '.join(map(str, repeated))} is listed more than once; list each value once")
        return values
    low, high = (_number(found[side], where) for side in ("low", "high"))
    log = bool(found["log"])
    if not low < high:
        raise ValidationError(f"{where}: a range goes from low to high, and {low:g} is not below {high:g}")
    if log and low <= 0:
        raise ValidationError(f"{where}: a log range needs a low bound above 0")
    return Range(low, high, log=log, integer=_whole_number_setting(name))


def _value(text: str) -> Any:
    """'8' -> 8, '1e-3' -> 0.001, 'cosine' or "'cosine'" -> 'cosine'."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip("'\"")


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValidationError(f"{where}: {text[:30]!r} is not a number; write a range like 1e-4 .. 1e-2") from None
    if not math.isfinite(value):
        raise ValidationError(f"{where}: a range's bounds must be finite numbers")
    return value


def _whole_number_setting(name: str) -> bool:
    annotation = TrainingConfig.model_fields[name].annotation
    return int in (typing.get_args(annotation) or (annotation,))


def grid_size(axes: dict[str, Axis]) -> int:
    """Runs a grid makes: the product of the number of values of each setting."""
    return math.prod(len(values) for values in axes.values() if isinstance(values, list))


def grid(base: dict[str, Any], axes: dict[str, Axis], cap: int = MAX_SWEEP_RUNS) -> list[dict[str, Any]]:
    """Every combination of the values (the cartesian product), each laid over the form's settings."""
    _check_grid(axes, cap)
    names = list(axes)
    return [{**base, **dict(zip(names, combination, strict=True))} for combination in itertools.product(*axes.values())]


def _check_grid(axes: dict[str, Axis], cap: int) -> str:
    """'3 × 2 = 6': the grid's size, worked out; ValidationError for a range or a grid over the cap."""
    ranges = [name for name, values in axes.items() if isinstance(values, Range)]
    if ranges:
        which = f"{ranges[0]} is a range" if len(ranges) == 1 else f"{', '.join(ranges[:-1])} and {ranges[-1]} are ranges"
        raise ValidationError(f"a grid needs lists of values, and {which}: list values, or use random search")
    size = grid_size(axes)
    factors = " × ".join(str(len(values)) for values in axes.values())
    if size > cap:
        raise ValidationError(
            f"this grid makes {factors + ' = ' if len(axes) > 1 else ''}{size} runs, and a sweep starts at most {cap} at once: "
            "drop some values, or use random search with a count"
        )
    return f"{factors} = {size}" if len(axes) > 1 else str(size)


MAX_SEED = 2**63 - 1


def typed_count(text: str) -> int:
    """A random search's run count as typed in the form."""
    return _typed_whole(text, "Runs", 1, MAX_SWEEP_RUNS)


def typed_seed(text: str) -> int:
    """A random search's seed as typed in the form."""
    return _typed_whole(text, "Random seed", 0, MAX_SEED)


def _typed_whole(text: str, label: str, low: int, high: int) -> int:
    """What a number box silently replaced with its last good value when out of range, refused with a sentence."""
    typed = text.strip()
    grouped = re.fullmatch(r"\d{1,3}(,\d{3})+", typed)  # 1,000 as a person groups it; 1,0 is no number
    try:
        number = int(typed.replace(",", "") if grouped else typed)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        shown = typed[:30] + ("..." if len(typed) > 30 else "")
        raise ValidationError(f"{label} must be a whole number from {low:,} to {high:,}, not {shown!r}")
    return number


def _check_count(count: int, cap: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= cap:
        raise ValidationError(f"a random search starts 1 to {cap} runs at once; {count!r} were asked for")


def random_search(
    base: dict[str, Any], axes: dict[str, Axis], count: int, seed: int, cap: int = MAX_SWEEP_RUNS
) -> list[dict[str, Any]]:
    """`count` draws: a value list is picked from evenly, a Range drawn from; the same seed draws the same runs."""
    _check_count(count, cap)
    rng = random.Random(seed)
    return [
        {**base, **{name: axis.draw(rng) if isinstance(axis, Range) else rng.choice(axis) for name, axis in axes.items()}}
        for _ in range(count)
    ]


def sweep_configs(
    base: dict[str, Any], text: str, mode: Mode, count: int = 10, seed: int = 0, cap: int = MAX_SWEEP_RUNS
) -> list[dict[str, Any]]:
    """The configs a sweep asks for, before validation: what the form previews and then starts."""
    axes = _axes(text, str(base.get("trainer") or "builtin"))
    if mode == "grid":
        return grid(base, axes, cap)
    return random_search(base, axes, count, seed, cap)


def sweep_runs(base: dict[str, Any], text: str, mode: Mode, count: int = 10, seed: int = 0) -> list[TrainingConfig]:
    """What Start starts: the sweep's configs, each validated, or a ValidationError naming the first bad one."""
    trainer = str(base.get("trainer") or "builtin")
    return checked_configs(sweep_configs(base, text, mode, count, seed), list(parse_axes(text, trainer)))


def _axes(text: str, trainer: str) -> dict[str, Axis]:
    axes = parse_axes(text, trainer)
    if not axes:
        raise ValidationError("write at least one setting to sweep, e.g. 'learning_rate = 1e-3, 3e-3, 1e-2'")
    return axes


def preview(text: str, trainer: str, mode: Mode, count: int = 10, cap: int = MAX_SWEEP_RUNS) -> tuple[int, str]:
    """How many runs the sweep starts and a sentence saying so, before anything starts; ValidationError if it can't."""
    axes = _axes(text, trainer)
    if mode == "grid":
        worked = _check_grid(axes, cap)
        size = grid_size(axes)
        what = f"every combination of {', '.join(axes)}" if len(axes) > 1 else f"one for each value of {next(iter(axes))}"
        return size, f"This grid starts {worked} run{'s' if size != 1 else ''}: {what}."
    _check_count(count, cap)
    return count, f"This random search starts {count} run{'s' if count != 1 else ''}, drawing {', '.join(axes)}."


def checked_configs(configs: list[dict[str, Any]], swept: list[str] = ()) -> list[TrainingConfig]:
    """Every combination as a TrainingConfig, or a ValidationError naming the first bad one by its swept values."""
    checked = []
    for number, config in enumerate(configs, start=1):
        try:
            checked.append(friendly(TrainingConfig, config, "training config"))
        except ValidationError as error:
            values = ", ".join(f"{name}={config.get(name)!r}" for name in swept)
            which = f"run {number} of {len(configs)}" + (f" ({values})" if values else "")
            raise ValidationError(f"{which} is not a valid config, so no run was started: {error}") from None
    return checked

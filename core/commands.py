"""Training commands an administrator registers by name; runs pick one, users never type a command.

The file (TUNEDECK_COMMANDS_FILE, default ./commands.toml) looks like:

    [commands.finetune-llama]
    command = ["python", "train.py", "--lr", "{learning_rate}", "--out", "{output_dir}"]
    working_dir = "/srv/training"
    env = { HF_HOME = "/srv/hf" }
    description = "PEFT fine-tune of our Llama checkpoint"

Each argument may use {run_id}, {output_dir}, {dataset}, {data_dir}, {python} (the worker's own
interpreter) and any training config field. Arguments are passed to the program as a list, never through a shell.
"""

import tomllib
from pathlib import Path
from string import Formatter
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.errors import ValidationError, quoted
from core.settings import Settings
from core.training_config import CommandName, TrainingConfig
from core.validation import friendly

Argument = Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class CommandSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[Argument] = Field(min_length=1)
    working_dir: Path = Path(".")
    env: dict[str, str] = Field(default_factory=dict)
    description: str = ""


class CommandsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    commands: dict[CommandName, CommandSpec] = Field(default_factory=dict)


def load_commands(settings: Settings) -> dict[str, CommandSpec]:
    """The registered commands; none when the file does not exist, a clear error when it is malformed."""
    path = settings.commands_file
    if not path.exists():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValidationError(f"the commands file {path} is not valid TOML: {error}") from None
    except OSError as error:  # a folder, or a file this user may not read
        raise ValidationError(f"cannot read the commands file {path}: {error.strerror or error}") from None
    return dict(friendly(CommandsFile, raw, f"commands file {path}").commands)


def get_command(settings: Settings, name: str) -> CommandSpec:
    commands = load_commands(settings)
    if name not in commands:
        known = ", ".join(sorted(commands)) or f"none: the administrator registers them in {settings.commands_file}"
        raise ValidationError(f"no training command named {quoted(name)}; registered commands: {known}")
    return commands[name]


def placeholders(spec: CommandSpec) -> list[str]:
    """The `{names}` the command's arguments use, in order."""
    found = [field for argument in spec.command for _, field, _, _ in Formatter().parse(argument) if field is not None]
    return list(dict.fromkeys(found))


def render_arguments(spec: CommandSpec, context: dict[str, object]) -> list[str]:
    """Fill the placeholders of each argument; an unknown placeholder is a clear error, not a KeyError."""
    for argument in spec.command:
        for _, field, _, _ in Formatter().parse(argument):
            if field is not None and field not in context:
                if field in TrainingConfig.model_fields:  # a setting this run left unset, not a typo
                    within = "" if argument == f"{{{field}}}" else f" in {argument!r}"
                    raise ValidationError(
                        f"this command passes {{{field}}}{within}, and this run does not set {field}: give it a value in "
                        "the run's settings"
                    )
                raise ValidationError(
                    f"the command argument {argument!r} uses {{{field}}}, which is not one of: {', '.join(sorted(context))} "
                    "(a brace meant literally is written twice: {{ or }})"
                )
    return [argument.format_map(context) for argument in spec.command]

"""The training config a run is started with, validated once at the boundary.

Each trainer reads its own settings with its own defaults (TRAINER_FIELDS): a setting left out
gets the chosen trainer's default, and one that trainer does not read is refused, so a run's
stored config says exactly what its trainer used.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

CommandName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
ModuleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]
TrainerName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")]

ALL_LINEAR = "all-linear"  # PEFT's name for every linear layer but the output head
AUTO_MODULES = "auto"  # the architecture's usual modules, as PEFT's table knows them
DEFAULT_TRAINER = "builtin"  # a config that names none


@dataclass(frozen=True)
class TrainerFields:
    """The settings one trainer reads (besides `trainer`) and the defaults it fills in."""

    fields: frozenset[str]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    needs_length: bool = True  # epochs or max_steps must be set


SCHEDULE = frozenset(
    {"base_model", "learning_rate", "epochs", "max_steps", "batch_size", "seed", "warmup_steps", "lr_schedule", "eval_interval"}
)
LORA = frozenset({"lora_rank", "lora_alpha", "lora_dropout", "target_modules"})
SHARED_DEFAULTS = {
    "learning_rate": 1e-2,
    "batch_size": 16,
    "lora_rank": 8,
    "lora_alpha": 16.0,
    "lora_dropout": 0.0,
    "warmup_steps": 0,
    "seed": 0,
    "eval_interval": 10,
    "lr_schedule": "linear",
}
BUILTIN_MODULES = ("fc1", "fc2")  # the layers the builtin trainer's small network has, all it can adapt
SAMPLES = {"eval_samples": 32}  # eval examples whose predictions a trainer logs at each evaluation
TRAINER_FIELDS: dict[str, TrainerFields] = {
    "builtin": TrainerFields(
        SCHEDULE | LORA | set(SAMPLES), SHARED_DEFAULTS | SAMPLES | {"base_model": "tiny-base", "target_modules": list(BUILTIN_MODULES)}
    ),
    "peft": TrainerFields(
        SCHEDULE | LORA | set(SAMPLES) | {"task", "save_interval", "resume_from_run"},
        SHARED_DEFAULTS
        | SAMPLES
        | {"base_model": "tiny-gpt2", "target_modules": [ALL_LINEAR], "task": "causal-lm"}
        | {"save_interval": 50, "eval_interval": 25},
    ),
    # A registered command reads what its placeholders name; only the settings a user gives are recorded.
    "command": TrainerFields(SCHEDULE | LORA | {"command"}, needs_length=False),
}


class TrainingConfig(BaseModel):
    """Hyperparameters of one LoRA fine-tune. Unknown keys are rejected so a typo never trains silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trainer: TrainerName = Field(
        DEFAULT_TRAINER, description="builtin: the numpy classifier; peft: Hugging Face LoRA; command: a registered script."
    )
    base_model: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)] | None = Field(
        None, description="A model name under data/models (or <data dir>/models), or an absolute path to a model folder."
    )
    task: Literal["causal-lm", "classification"] | None = Field(
        None,
        description="causal-lm learns to continue `text` (or `completion` after `prompt`); "
        "classification predicts `label` from `text` and reports eval_accuracy.",
    )
    learning_rate: float | None = Field(None, gt=0, le=10, allow_inf_nan=False, description="Peak learning rate after warmup.")
    epochs: int | None = Field(None, ge=1, le=10_000)
    max_steps: int | None = Field(None, ge=1, le=10_000_000, description="Caps training; wins over epochs when both are set.")
    batch_size: int | None = Field(None, ge=1, le=65_536)
    lora_rank: int | None = Field(None, ge=1, le=1024)
    lora_alpha: float | None = Field(None, gt=0, le=10_000, allow_inf_nan=False)
    lora_dropout: float | None = Field(None, ge=0, lt=1, allow_inf_nan=False)
    target_modules: list[ModuleName] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description=f"Module names, or '{ALL_LINEAR}' (every linear layer), or '{AUTO_MODULES}' (the architecture's usual ones).",
    )
    warmup_steps: int | None = Field(None, ge=0, le=1_000_000)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    eval_interval: int | None = Field(None, ge=1, le=1_000_000, description="Evaluate every N optimizer steps.")
    lr_schedule: Literal["linear", "cosine", "constant"] | None = None
    eval_samples: int | None = Field(
        None, ge=0, le=1000, description="Eval examples (a fixed, seeded set) whose predictions are logged at each eval; 0: none."
    )
    save_interval: int | None = Field(
        None, ge=1, le=1_000_000, description="Save a checkpoint every N steps (the last 2 are kept)."
    )
    resume_from_run: int | None = Field(None, ge=1, description="Continue from the last checkpoint of this earlier run.")
    command: CommandName | None = Field(None, description="With trainer 'command': the registered training command to run.")

    @model_validator(mode="before")
    @classmethod
    def _trainer_defaults(cls, data: Any) -> Any:
        """Fills in the chosen trainer's defaults; refuses settings that trainer would ignore."""
        if not isinstance(data, dict):
            return data
        name = str(data.get("trainer") or DEFAULT_TRAINER).strip()
        spec = TRAINER_FIELDS.get(name)
        if spec is None:
            return data  # the trainer field itself reports the bad name
        given = {key: value for key, value in data.items() if value is not None}
        ignored = sorted(key for key in given if key in cls.model_fields and key not in spec.fields | {"trainer"})
        if ignored:
            users = sorted(trainer for trainer, other in TRAINER_FIELDS.items() if set(ignored) <= other.fields)
            hint = f"only the {' or '.join(users)} trainer reads it" if users else "remove it"
            raise ValueError(f"{', '.join(ignored)}: not a setting of the {name} trainer ({hint})")
        return {**spec.defaults, **given}

    @field_validator("trainer")
    @classmethod
    def _known_trainer(cls, name: str) -> str:
        if name not in TRAINER_FIELDS:
            raise ValueError(f"unknown trainer {name!r}; available trainers: {', '.join(sorted(TRAINER_FIELDS))}")
        return name

    @field_validator("target_modules", mode="before")
    @classmethod
    def _modules_from_text(cls, value: Any) -> Any:
        """'all-linear' or 'c_attn, c_proj' as one string reads like the list it means; a name given twice is one."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return list(dict.fromkeys(value)) if isinstance(value, list) and all(isinstance(v, str) for v in value) else value

    @model_validator(mode="after")
    def _needs_a_length(self) -> "TrainingConfig":
        if TRAINER_FIELDS[self.trainer].needs_length and self.epochs is None and self.max_steps is None:
            raise ValueError("set epochs or max_steps so training knows when to stop")
        return self

    @model_validator(mode="after")
    def _command_goes_with_its_trainer(self) -> "TrainingConfig":
        """(A command named for another trainer is refused as a setting that trainer does not read.)"""
        if self.trainer == "command" and self.command is None:
            raise ValueError(
                "the command trainer runs a registered training command: name one (the commands file, commands.toml, "
                "lists them; see the README's Registered training commands)"
            )
        return self

    @field_validator("target_modules")
    @classmethod
    def _known_modules(cls, modules: list[str] | None, info: ValidationInfo) -> list[str] | None:
        """'all-linear' and 'auto' stand alone; the builtin trainer's layers are known before it runs, so a wrong name
        is refused before a run is queued (the peft trainer's depend on the model, which only the worker loads)."""
        if modules and len(modules) > 1 and {ALL_LINEAR, AUTO_MODULES} & set(modules):
            raise ValueError(f"must be '{ALL_LINEAR}' or '{AUTO_MODULES}' alone, without other module names")
        unknown = sorted(set(modules or []) - {*BUILTIN_MODULES, ALL_LINEAR, AUTO_MODULES})
        if info.data.get("trainer") == "builtin" and unknown:
            raise ValueError(
                f"must be among {', '.join(BUILTIN_MODULES)} (or '{ALL_LINEAR}'), the layers the builtin trainer can "
                f"adapt; {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not"
            )
        return modules

    def stored(self) -> dict[str, Any]:
        """The config as a run records it: only the settings its trainer reads."""
        return self.model_dump(mode="json", exclude_none=True)


def fields_for(trainer: str) -> list[str]:
    """The settings the form shows for `trainer`, in the model's order."""
    spec = TRAINER_FIELDS[trainer]
    return [name for name in TrainingConfig.model_fields if name in spec.fields]


def defaults_for(trainer: str) -> dict[str, Any]:
    return dict(TRAINER_FIELDS[trainer].defaults)

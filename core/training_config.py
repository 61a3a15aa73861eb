"""The training config a run is started with, validated once at the boundary."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

CommandName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
ModuleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]


class TrainingConfig(BaseModel):
    """Hyperparameters of one LoRA fine-tune. Unknown keys are rejected so a typo never trains silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trainer: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")] = (
        "builtin"
    )
    base_model: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)] = "tiny-base"
    learning_rate: float = Field(1e-2, gt=0, le=10, description="Peak learning rate after warmup.")
    epochs: int | None = Field(None, ge=1, le=10_000)
    max_steps: int | None = Field(None, ge=1, le=10_000_000, description="Caps training; wins over epochs when both are set.")
    batch_size: int = Field(16, ge=1, le=65_536)
    lora_rank: int = Field(8, ge=1, le=1024)
    lora_alpha: float = Field(16.0, gt=0, le=10_000)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[ModuleName] = Field(default_factory=lambda: ["fc1", "fc2"], min_length=1, max_length=64)
    warmup_steps: int = Field(0, ge=0, le=1_000_000)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    eval_interval: int = Field(10, ge=1, le=1_000_000, description="Evaluate every N optimizer steps.")
    lr_schedule: Literal["linear", "cosine", "constant"] = "linear"
    command: CommandName | None = Field(None, description="With trainer 'command': the registered training command to run.")

    @model_validator(mode="after")
    def _needs_a_length(self) -> "TrainingConfig":
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set epochs or max_steps so training knows when to stop")
        return self

    @model_validator(mode="after")
    def _command_goes_with_its_trainer(self) -> "TrainingConfig":
        if (self.trainer == "command") != (self.command is not None):
            raise ValueError("trainer 'command' needs a command name, and a command name needs trainer 'command'")
        return self

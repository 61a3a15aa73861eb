"""A training command for the soak test: log four metrics per step through the SDK as fast as it takes them.

A worker runs it as the registered command 'flood'; it attaches to the worker's run, logs
steps 1, 2, ... until --max-steps or --seconds, and prints how many steps it logged so the
test can find every point in the store. The values are a function of the step (values_at).
"""

import argparse
import time

from core import tracking

SCALES = {"loss": 1.0, "eval_loss": 2.0, "learning_rate": 3.0, "grad_norm": 4.0}
LOGGED = "flood logged steps:"


def values_at(step: int) -> dict[str, float]:
    return {key: scale / step for key, scale in SCALES.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    with tracking.start_run() as run:
        deadline = time.monotonic() + args.seconds  # from attaching: a busy store may make that slow
        step = 0
        while step < args.max_steps and time.monotonic() < deadline:
            step += 1
            run.log(step, values_at(step))
        print(f"{LOGGED} {step}", flush=True)  # before the final flush: a failed flush still shows what was logged


if __name__ == "__main__":
    main()

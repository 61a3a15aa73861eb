"""System metrics: what a training process uses, sampled on a thread, charted only on request."""

import threading

from core.presenters import chart_keys
from core.system_metrics import SystemSampler, parse_gpu_usage

NVIDIA_SMI = "0, 87, 40960\n1, 3, 512\n"


def test_a_sample_has_cpu_and_memory_of_the_process_and_its_children():
    values = SystemSampler(lambda step, values: None, interval=0).sample()

    assert {"system/cpu_percent", "system/rss_mb", "system/memory_percent"} <= set(values)
    assert values["system/rss_mb"] > 1 and 0 < values["system/memory_percent"] <= 100


def test_samples_are_logged_at_growing_steps_until_the_block_ends_then_once_more():
    logged, two = [], threading.Event()

    def log(step, values):
        logged.append((step, values))
        if len(logged) == 2:
            two.set()

    with SystemSampler(log, interval=0.05) as sampler:
        assert two.wait(timeout=30)

    assert not sampler._thread.is_alive()
    assert [step for step, _ in logged] == list(range(len(logged)))  # never a step again: the store appends them
    assert all("system/cpu_percent" in values for _, values in logged)


def test_gpu_usage_is_read_per_gpu_from_nvidia_smi():
    assert parse_gpu_usage(NVIDIA_SMI) == {
        "system/gpu0_utilization": 87.0,
        "system/gpu0_memory_mb": 40960.0,
        "system/gpu1_utilization": 3.0,
        "system/gpu1_memory_mb": 512.0,
    }


def test_only_the_gpus_cuda_visible_devices_names_are_reported():
    assert set(parse_gpu_usage(NVIDIA_SMI, visible="1")) == {"system/gpu1_utilization", "system/gpu1_memory_mb"}


def test_unreadable_gpu_lines_are_skipped():
    assert parse_gpu_usage("0, [N/A], [N/A]\nnot csv\n") == {}


def test_charts_leave_system_metrics_out_by_default():
    keys = ["loss", "system/cpu_percent", "eval_loss"]

    assert chart_keys(keys) == ["loss", "eval_loss"]

"""Benchmarks and prompts: files or Hub rows → ``MCItem`` lists → (context, continuation) requests."""

from likra.data.items import MCItem, read_jsonl
from likra.data.prompts import ItemRequests, build_requests
from likra.data.tasks import TASKS, TaskSpec, data_dir_from, get_task, load_items

__all__ = [
    "TASKS",
    "ItemRequests",
    "MCItem",
    "TaskSpec",
    "build_requests",
    "data_dir_from",
    "get_task",
    "load_items",
    "read_jsonl",
]

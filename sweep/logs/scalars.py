"""Reading a run's scalars back from its TensorBoard event files (no TensorFlow, no torch)."""

from __future__ import annotations

import glob
import os

from tensorboard.compat.proto.event_pb2 import Event

from sweep.logs.tfrecord import read_records


def read_scalars(log_dir: str, prefix: str = "") -> dict[str, list[tuple[int, float]]]:
    """`{tag: [(step, value), ...]}` of every scalar under `log_dir` whose tag starts with `prefix`,
    in step order; an unreadable or missing dir gives {}."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        try:
            for data in read_records(path):
                event = Event.FromString(data)
                for v in event.summary.value:
                    if v.tag.startswith(prefix) and v.WhichOneof("value") == "simple_value":
                        out.setdefault(v.tag, []).append((int(event.step), float(v.simple_value)))
        except OSError:
            continue
    return {tag: sorted(points) for tag, points in out.items()}

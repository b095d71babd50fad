"""TensorBoard event files written by this process alone (no queue thread, no TensorFlow), and
the summary values lr-sweep writes into them: scalars, the HPARAMS plugin's protos, and the
custom-scalars layout that draws every `lr/*` tag of a run in one chart."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.compat.proto.types_pb2 import DT_FLOAT, DT_STRING
from tensorboard.plugins.hparams import plugin_data_pb2

from sweep.logs.tfrecord import record

LR_CHART = ("lr", "lr/* (every group)", r"lr/.*")  # custom-scalars category, chart title, tag regex

# The HPARAMS plugin's names, as tensorboard.plugins.hparams.metadata defines them (that module is
# not imported: it imports TensorBoard's TensorFlow stub, see sweep/logs/tfrecord.py).
HPARAMS_PLUGIN, HPARAMS_DATA_VERSION = "hparams", 0
EXPERIMENT_TAG = "_hparams_/experiment"
SESSION_START_INFO_TAG = "_hparams_/session_start_info"
SESSION_END_INFO_TAG = "_hparams_/session_end_info"
NULL_TENSOR = TensorProto(dtype=DT_FLOAT, tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=0)]))


class EventFile:
    """One TensorBoard event file, written by this process only (no queue, no thread)."""

    def __init__(self, log_dir: str, suffix: str = "") -> None:
        os.makedirs(log_dir, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}{suffix}"
        self.path = os.path.join(log_dir, name)
        self._file = open(self.path, "wb")
        self.write(Event(wall_time=time.time(), step=0, file_version="brain.Event:2"))
        self.flush()

    def write(self, event: Event) -> None:
        self._file.write(record(event.SerializeToString()))

    def summary(self, values: Sequence[Summary.Value], step: int, wall_time: float | None = None) -> None:
        self.write(
            Event(
                wall_time=time.time() if wall_time is None else wall_time, step=int(step), summary=Summary(value=values)
            )
        )

    def restart_at(self, step: int) -> None:
        """A purge marker (SessionLog START at `step`): TensorBoard drops the points at `step` and
        later that it read from this run's earlier files, so a resumed run does not draw twice."""
        self.write(Event(wall_time=time.time(), step=int(step), session_log=SessionLog(status=SessionLog.START)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def scalar_value(tag: str, value: float) -> Summary.Value:
    return Summary.Value(tag=tag, simple_value=float(value))


def plugin_value(tag: str, plugin: str, content: bytes, tensor: TensorProto | None = None) -> Summary.Value:
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=plugin, content=content))
    return Summary.Value(tag=tag, metadata=meta, tensor=tensor or NULL_TENSOR)


def hparams_value(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary.Value:
    data.version = HPARAMS_DATA_VERSION
    return plugin_value(tag, HPARAMS_PLUGIN, data.SerializeToString())


def lr_layout_value() -> Summary.Value:
    """The custom-scalars layout: all `lr/*` tags of a run in one chart."""
    from tensorboard.plugins.custom_scalar import layout_pb2

    category, title, regex = LR_CHART
    layout = layout_pb2.Layout(
        category=[
            layout_pb2.Category(
                title=category,
                chart=[layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=[regex]))],
            )
        ]
    )
    tensor = TensorProto(dtype=DT_STRING, string_val=[layout.SerializeToString()])
    return plugin_value("custom_scalars__config__", "custom_scalars", b"", tensor)

"""Hydra plugin: adds lr-sweep's config groups to every Hydra app's search path.

With lr-sweep installed, any app can list `optimizer`, `groups`, `schedule` and `search` in its
defaults list (or pick them on the command line) without copying the YAML files. They come last
in the search path, so an app's own config of the same name wins.

It also puts the directory the command runs in on `sys.path` (as `python -m` does): a `_target_`
of a module there (`model._target_=myproj.Net`, `src.models.Net`) resolves without `PYTHONPATH=.`,
in single runs and sweeps alike.
"""

import os
import sys

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

LR_SWEEP_CONF = "pkg://sweep.conf"


class LRSweepSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())  # last: an installed package of the same name wins
        search_path.append(provider="lr-sweep", path=LR_SWEEP_CONF)

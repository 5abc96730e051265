"""pytest (nbval) runs these notebooks at smoke scale: fast code-path checks, not results.

The notebook kernels inherit this process's environment, and each notebook reads its scale with
``agent_lab.reporting.notebook_scale()`` (``$AGENT_LAB_SCALE``, else ``cpu`` for a person opening
it). This file sits here, not in ``tests/``, because ``pytest --nbval-lax notebooks/`` loads only
the conftest files of the folders it collects.
"""
import os

from agent_lab.reporting import SCALE_ENV

os.environ[SCALE_ENV] = "smoke"

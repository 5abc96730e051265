"""``python -m agent_lab ...`` is the ``agent-lab`` command (what ``torchrun -m agent_lab train ...`` runs)."""
import sys

from .cli import main

sys.exit(main())

"""``python -m jaxgrasp.plan PATH...``: the planning command line (:mod:`jaxgrasp.cli.plan`).

This module is callable like the function it shares a name with: ``jaxgrasp.plan(mesh)`` is
:func:`jaxgrasp.sim.verify.plan` (the planner's, with ``verify``) even after ``import jaxgrasp.plan``.
"""

import sys
import types

from jaxgrasp.cli.plan import exit_process, main
from jaxgrasp.sim.verify import plan as _plan


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return _plan(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    exit_process(main())

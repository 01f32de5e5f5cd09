"""A request's run folder: `request.json`, then `steps/<name>.json` for each step done, in order.

`files` writes and reads the step files atomically; `results` holds the models of each step's result.
"""

from erasure.run_folder.files import ATTESTED_STEPS, STEPS, save_step, step_results, steps_dir

__all__ = ["ATTESTED_STEPS", "STEPS", "save_step", "step_results", "steps_dir"]

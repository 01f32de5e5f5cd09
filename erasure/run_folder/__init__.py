"""A request's run folder: `request.json`, then `steps/<name>.json` for each step done, in order.

`files` writes the step files atomically, each result checked against its model, and reads them back
(`RunSteps`); `results` holds the models of each step's result.
"""

from erasure.run_folder.files import (ATTESTED_STEPS, STEPS, RunFolderError, RunSteps, StepFormatError, save_step,
                                      step_results, steps_dir)

__all__ = ["ATTESTED_STEPS", "STEPS", "RunFolderError", "RunSteps", "StepFormatError", "save_step", "step_results",
           "steps_dir"]

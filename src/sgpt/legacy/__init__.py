"""The original SGPT training scripts' command lines, run by sgpt (issue 11, SPEC 2).

Every training command of the seed README (``biencoder/nli_msmarco/README.md``) runs as written,
from the repository root, under ``accelerate launch`` or ``python``:

* ``examples/training/nli/training_nli_v2.py`` -> :mod:`sgpt.legacy.training_nli_v2`
  (also ``examples/training/msmarco/training_nli_v2.py``, the README's path for SBERT-large);
* ``examples/training/ms_marco/train_bi-encoder_mnrl.py`` -> :mod:`sgpt.legacy.train_bi_encoder_mnrl`.

Each accepts the original's flags with its defaults and maps them onto ``(task, flags)`` in the
vocabulary of ``sgpt train <task>`` and of the released recipes' ``flags:``; :mod:`sgpt.cli.recipe`
resolves and runs that. :func:`sgpt.legacy.commands.parse_command` does the mapping for a whole
shell command line (environment variables, ``accelerate launch`` and its options included).
"""

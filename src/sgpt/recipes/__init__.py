"""Recipes: compose data, model, trainer and evaluators into one training run of a task.

:mod:`~sgpt.recipes.train_nli` (symmetric search: NLI triplets, STS-B) and
:mod:`~sgpt.recipes.train_retrieval` (asymmetric search: queries vs documents, BEIR nDCG@10).
The trainer (:mod:`sgpt.train`) does not know which task it trains; a recipe is where the task lives.
"""

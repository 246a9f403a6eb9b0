"""One module per chapter: the experiment's runs (configurations -> records) and its summary
(records -> tables and verdicts), so a notebook is its parameters, a few calls and the story."""

"""The Python side of workflow/ (the Snakemake rules): a config's Study object and what each rule
asks of it, the plan and progress of a session, run identity, and the terminal."""

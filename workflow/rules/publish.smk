# Publish the runs of a config (config/reproduce.yaml, config/gradients.yaml) to
# results/reference/: the small files that are committed, that the tables and figures of
# README.md and docs/results.md come from, and that `source: reference` rebuilds the tables from.
# What each run keeps there is study.published_files (rnnbench.workflow.pipeline); a tuning
# trial keeps its train.json and history.csv under results/reference/{experiment}/trials/
# (publish_trial).

if study.publish and not study.from_reference:

    # Copies of a few small files: on the machine that runs Snakemake (not a cluster job), on
    # no core of their own (threads 0), first among the jobs that wait, so that a run is
    # published as soon as it has finished and not after the next run has trained for an hour.
    localrules:
        publish_run,
        publish_trial,

    # Each run as soon as it has finished (its evaluation, gradients and context measured), so
    # that a long experiment can commit its runs as they come: a stopped experiment or a
    # replaced machine loses at most the runs in flight. A run of uncommitted training code is
    # refused unless RNNBENCH_PUBLISH_DIRTY=1, which provenance.json then records.
    rule publish_run:
        input:
            unpack(study.published_run_inputs),
            # a tuned model's final run waits for the copies of every trial of its tuning, so
            # that a study trained one budget at a time (workflow/scripts/train_study.sh)
            # publishes them all
            first_trials=model_trial_publications,
            later_trials=lambda w: model_trial_publications(w, first=False),
        output:
            [f"results/reference/{{published}}/{name}" for name in study.published_files],
        # {published}: experiment/run of this config's runs only; another experiment's
        # published files (a `baseline`) are inputs, never this rule's outputs
        wildcard_constraints:
            published=pattern(study.published_runs),
        params:
            run_dir=lambda w: study.published_run(w).path,
        threads: 0
        priority: 10
        log:
            f"results/studies/{study.name}/logs/publish_run/{{published}}.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m rnnbench.analysis.publish --copy-only --out results/reference"
            " {params.run_dir:q} > {log:q} 2>&1"

    # Each tuning trial as soon as it has finished: all that its rung's selection reads, so
    # that a fresh checkout resumes the tuning from the committed trials (Study.resumed).
    rule publish_trial:
        input:
            study.published_trial_inputs,
        output:
            [f"results/reference/{{trial}}/{name}" for name in wiring.TRIAL_FILES],
        wildcard_constraints:
            trial=pattern(study.published_trials),
        params:
            run_dir=lambda w: study.published_trial(w).path,
        threads: 0
        priority: 10
        log:
            f"results/studies/{study.name}/logs/publish_trial/{{trial}}.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m rnnbench.analysis.publish --copy-only --trials --out results/reference"
            " {params.run_dir:q} > {log:q} 2>&1"

    rule publish_reference:
        input:
            [f"results/reference/{r.experiment}/{r.run_id}/train.json" for r in study.runs],
        output:
            # the commit(s) of each experiment's runs, and the runs allowed despite
            # uncommitted training code (RNNBENCH_PUBLISH_DIRTY=1)
            provenance=study.provenance_files(),
            # the comparison with published numbers, when the config has any
            tables=(
                ["results/reference/reference.csv", "results/reference/reference.md"]
                if study.published
                else []
            ),
        params:
            run_dirs=wiring.run_dirs(study.runs, from_reference=True),
            published=json.dumps(study.published),
        log:
            f"results/studies/{study.name}/logs/publish_reference.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m rnnbench.analysis.publish --no-copy --out results/reference"
            " --published {params.published:q} {params.run_dirs:q} > {log:q} 2>&1"

    rule publish_trials:
        input:
            trials=f"results/studies/{study.name}/tables/trials.csv",
            # every trial's own copy first (each published as soon as it has finished)
            copies=trial_publications,
        output:
            [f"results/reference/{e}/trials.csv" for e in study.tuned],
        log:
            f"results/studies/{study.name}/logs/publish_trials.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m rnnbench.experiment.tuning split {input.trials:q}"
            " --out-dir results/reference > {log:q} 2>&1"

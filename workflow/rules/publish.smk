# Publish the runs of a config (config/reproduce.yaml, config/gradients.yaml) to
# results/reference/: the small files that are committed, that the tables and figures of
# README.md and docs/results.md come from, and that `source: reference` rebuilds the tables from.

PUBLISHED_FILES = [
    "train.json",
    "eval.json",
    "history.csv",
    "grad_stats.csv",
    "spectra.csv",
    "grad_bins.csv",
    "grad_quantiles.csv",
    "gradients.csv",
    "decay.csv",
    "gradients.json",
    # the effective context (context.smk), where the config measures it
    *(["context.csv", "context.json"] if CONTEXT else []),
]

if PUBLISH and not FROM_REFERENCE:

    rule publish_reference:
        input:
            train=run_files("train.json"),
            eval=run_files("eval.json"),
            history=run_files("history.csv"),
            steps=run_files("steps.csv.gz"),
            grad_stats=run_files("grad_stats.csv"),
            spectra=run_files("spectra.csv"),
            gradients=run_files("gradients.csv"),
            decay=run_files("decay.csv"),
            context=run_files("context.json") if CONTEXT else [],
        output:
            runs=[
                f"results/reference/{r.experiment}/{r.run_id}/{name}"
                for r in RUNS
                for name in PUBLISHED_FILES
            ],
            # the commit(s) of each experiment's runs; runs of uncommitted training code are
            # refused unless RNNBENCH_PUBLISH_DIRTY=1, which this file then records
            provenance=[
                f"results/reference/{e}/provenance.json"
                for e in dict.fromkeys(r.experiment for r in RUNS)
            ],
            # the comparison with published numbers, when the config has any
            tables=(
                ["results/reference/reference.csv", "results/reference/reference.md"]
                if PUBLISHED
                else []
            ),
        params:
            run_dirs=run_dirs(),
            published=json.dumps(PUBLISHED),
        log:
            f"results/studies/{STUDY}/logs/publish_reference.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m rnnbench.analysis.publish --out results/reference"
            " --published {params.published:q} {params.run_dirs:q} > {log:q} 2>&1"

    rule publish_trials:
        input:
            trials=f"results/studies/{STUDY}/tables/trials.csv",
        output:
            [f"results/reference/{e}/trials.csv" for e in TUNED],
        log:
            f"results/studies/{STUDY}/logs/publish_trials.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m rnnbench.experiment.tuning split {input.trials:q}"
            " --out-dir results/reference > {log:q} 2>&1"

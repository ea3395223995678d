# Publish the runs of experiments that reproduce a published number (config/reproduce.yaml)
# to results/reference/, the small files that are committed and that the README table shows.

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
]

if PUBLISHED and not FROM_REFERENCE:

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
        output:
            runs=[
                f"results/reference/{r.experiment}/{r.run_id}/{name}"
                for r in RUNS
                for name in PUBLISHED_FILES
            ],
            table="results/reference/reference.csv",
            markdown="results/reference/reference.md",
        params:
            run_dirs=run_dirs(),
            published=json.dumps(PUBLISHED),
        log:
            "results/logs/publish_reference.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m rnnbench.publish --out results/reference --published {params.published:q}"
            " {params.run_dirs:q} > {log:q} 2>&1"

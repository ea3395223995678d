# Tuning (rnnbench.experiment.tuning): every model of a tuned experiment trains the same trial
# points; each rung's finished trials are ranked on validation perplexity and the best promoted
# (a checkpoint rule: what the next rung trains depends on this one's results); the last
# rung's best point configures the model's final runs (train_model's `selection` input).
# Needs common.smk (entrant_files, selection_params, all_selections).
from rnnbench.figures import registry as figure_registry

checkpoint select_trials:
    input:
        # train.json and history.csv of the rung's trials; not the ranking code: a rewritten
        # selection would retrain every final run after it (hours), so editing tuning.py
        # reselects only with --forcerun select_trials
        entrant_files,
    output:
        "results/tuning/{corpus}/{experiment}/{group}/rung{rung}.json",
    params:
        flags=selection_params,
    # a rung's ranking before more training: the promoted trials can start
    priority: 10
    log:
        "results/logs/select_trials/{corpus}/{experiment}/{group}/rung{rung}.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.experiment.tuning select {params.flags[dirs]}"
        " --points {params.flags[points]:q} --labels {params.flags[labels]:q} --rung {wildcards.rung}"
        " --rungs {params.flags[rungs]} --keep-count {params.flags[keep]}"
        " --out {output:q} > {log:q} 2>&1"


rule collect_trials:
    input:
        all_selections,
    output:
        # the readable table shown in the report; the CSV beside it is the full download
        html=report(
            "results/studies/{study}/tables/trials.html",
            caption="../report/trials.rst",
            category="Tuning",
            subcategory="Tables",
            labels={"table": "every trial and rung"},
        ),
        csv=report(
            "results/studies/{study}/tables/trials.csv",
            caption="../report/trials.rst",
            category="Tuning",
            subcategory="Tables",
            labels={"table": "every trial and rung (CSV, every column)"},
        ),
    params:
        # spaces and seeds: the edge and shared-seed columns (also of published tables)
        tunings=study.trial_tunings(),
    log:
        "results/studies/{study}/logs/collect_trials.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.experiment.tuning collect {input:q} --tunings {params.tunings:q}"
        " --out {output.csv:q} > {log:q} 2>&1"
        " && python -m rnnbench.analysis.tables trials {output.csv:q} --out {output.html:q}"
        " >> {log:q} 2>&1"


rule plot_tuning_curve:
    input:
        trials=rules.collect_trials.output.csv,
        # the vocabulary size (a trial above it diverged) and the runs' notes
        runs="results/studies/{study}/tables/runs.csv",
        code=code("plot_tuning_curve"),
    output:
        png=report(
            "results/studies/{study}/figures/tuning_curve.png",
            caption="../report/tuning_curve.rst",
            category=figure_registry.spec("tuning_curve").category,
            subcategory="Figures",
            labels={"figure": figure_registry.spec("tuning_curve").report_label},
        ),
        svg="results/studies/{study}/figures/tuning_curve.svg",
    params:
        tables=input_dir,
    log:
        "results/studies/{study}/logs/plot_tuning_curve.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.figures.draw tuning_curve --tables {params.tables}"
        " --out {output.png:q} > {log:q} 2>&1"

# Tables from every run, figures from the tables, and the report items.
# Every figure is listed once, in rnnbench.figures.registry; the rules' lists are made from it.
from rnnbench.figures import registry as figure_registry

# Figures: FIGURE_CATEGORIES (rnnbench.workflow.jobs: name -> report category, a caption in
# workflow/report/{name}.rst each), the learning curves, and the reproduction where the config
# has published numbers (config/reproduce.yaml).


rule collect_metrics:
    input:
        train=study.run_files("train.json"),
        eval=study.run_files("eval.json"),
        history=study.run_files("history.csv"),
        # per-step norms, or their binned copy in a published reference run
        steps=study.run_files("steps.csv.gz", published="grad_bins.csv"),
        # the corpus's token counts: the share of <unk> in each split (none from published runs)
        stats=[] if study.from_reference else [study.stats],
        # the code that builds the tables: editing it rebuilds them (not the runs)
        code=code("collect_metrics"),
    output:
        runs="results/studies/{study}/tables/runs.csv",
        # the readable table shown in the report; the CSV beside it is the full download
        summary_html=report(
            "results/studies/{study}/tables/summary.html",
            caption="../report/summary_table.rst",
            category="Tables",
            subcategory="Tables",
            labels={"table": "summary across seeds"},
        ),
        summary=report(
            "results/studies/{study}/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
            subcategory="Tables",
            labels={"table": "summary across seeds (CSV, every column)"},
        ),
        summary_md="results/studies/{study}/tables/summary.md",
        epochs="results/studies/{study}/tables/epochs.csv",
        grad_norms="results/studies/{study}/tables/grad_norms.csv",
    params:
        tables=output_dir,
        run_dirs=study.run_dirs(),
        stats=lambda wildcards, input: " ".join(f"--stats {study.corpus}={p}"
                                                for p in input.stats),
    log:
        "results/studies/{study}/logs/collect_metrics.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.analysis.aggregate --out-dir {params.tables} {params.stats}"
        " {params.run_dirs:q}"
        " > {log:q} 2>&1"


rule compare_models:
    input:
        runs=rules.collect_metrics.output.runs,
        code=code("compare_models"),
        # a tuned config: selections on an edge of their space are marked
        # (rnnbench.experiment.trials)
        trials=study.tuning_targets()[:1],
        # each model's effective context, where measured (context.smk)
        context=lambda wildcards: study.context_targets()[:1],
    output:
        models="results/studies/{study}/tables/models.csv",
        # the readable tables shown in the report; the CSV beside them is the full download
        html=report(
            "results/studies/{study}/tables/comparisons.html",
            caption="../report/comparisons.rst",
            category="Tables",
            subcategory="Tables",
            labels={"table": "model comparisons (differences with 95% CIs)"},
        ),
        pairs=report(
            "results/studies/{study}/tables/comparisons.csv",
            caption="../report/comparisons.rst",
            category="Tables",
            subcategory="Tables",
            labels={"table": "model comparisons (CSV, every pair and column)"},
        ),
        md="results/studies/{study}/tables/comparisons.md",
    params:
        tables=output_dir,
        trials=lambda wildcards, input: f"--trials {input.trials}" if input.trials else "",
        context=lambda wildcards, input: f"--context {input.context}" if input.context else "",
    log:
        "results/studies/{study}/logs/compare_models.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.analysis.compare --runs {input.runs:q} --out-dir {params.tables}"
        " {params.trials} {params.context} > {log:q} 2>&1"


rule compare_baseline:
    input:
        runs=rules.collect_metrics.output.runs,
        baseline=[f"{d}/{name}" for d in study.baseline_dirs
                  for name in ("train.json", "eval.json")],
        code=code("compare_baseline"),
    output:
        html=report(
            "results/studies/{study}/tables/precision.html",
            caption="../report/precision.rst",
            category="Tables",
            subcategory="Tables",
            labels={"table": "against the published baseline (e.g. bf16 vs fp32)"},
        ),
        csv=report(
            "results/studies/{study}/tables/precision.csv",
            caption="../report/precision.rst",
            category="Tables",
            subcategory="Tables",
            labels={"table": "against the published baseline (CSV, every column)"},
        ),
        md="results/studies/{study}/tables/precision.md",
    params:
        tables=output_dir,
        baselines=json.dumps(study.baselines),
        dirs=study.baseline_dirs,
    log:
        "results/studies/{study}/logs/compare_baseline.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.analysis.baseline --runs {input.runs:q}"
        " --baselines {params.baselines:q} --out-dir {params.tables} {params.dirs:q} > {log:q} 2>&1"


rule plot_model_comparison:
    input:
        models=rules.compare_models.output.models,
        # each seed's dot
        runs=rules.collect_metrics.output.runs,
        code=code("plot_model_comparison"),
    output:
        png=report(
            "results/studies/{study}/figures/model_comparison.png",
            caption="../report/model_comparison.rst",
            category=figure_registry.spec("model_comparison").category,
            subcategory="Figures",
            labels={"figure": figure_registry.spec("model_comparison").report_label},
        ),
        svg="results/studies/{study}/figures/model_comparison.svg",
    params:
        tables=input_dir,
    log:
        "results/studies/{study}/logs/plot_model_comparison.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.figures.draw model_comparison --tables {params.tables}"
        " --out {output.png:q} > {log:q} 2>&1"


for _name, _category in FIGURE_CATEGORIES.items():

    rule:
        name:
            f"plot_{_name}"
        input:
            tables=rules.collect_metrics.output,
            code=code(f"plot_{_name}"),
        output:
            png=report(
                f"results/studies/{{study}}/figures/{_name}.png",
                caption=f"../report/{_name}.rst",
                category=_category,
                subcategory="Figures",
                labels={"figure": figure_registry.spec(_name).report_label},
            ),
            svg=f"results/studies/{{study}}/figures/{_name}.svg",
        params:
            tables=input_dir,
            figure=_name,
        log:
            f"results/studies/{{study}}/logs/plot_{_name}.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m rnnbench.figures.draw {params.figure} --tables {params.tables}"
            " --out {output.png:q} > {log:q} 2>&1"


rule plot_learning_curves:
    input:
        epochs=rules.collect_metrics.output.epochs,
        runs=rules.collect_metrics.output.runs,
        code=code("plot_learning_curves"),
    output:
        png=report(
            "results/studies/{study}/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category=figure_registry.spec("learning_curves").category,
            subcategory="Figures",
            labels={"figure": figure_registry.spec("learning_curves").report_label},
        ),
        svg="results/studies/{study}/figures/learning_curves.svg",
        table_html=report(
            "results/studies/{study}/tables/learning_curves.html",
            caption="../report/learning_curves_table.rst",
            category="Training",
            subcategory="Tables",
            labels={"table": "learning curves (mean, 95% CI per model and tokens)"},
        ),
        table=report(
            "results/studies/{study}/tables/learning_curves.csv",
            caption="../report/learning_curves_table.rst",
            category="Training",
            subcategory="Tables",
            labels={"table": "learning curves (CSV, every column)"},
        ),
    params:
        tables=input_dir,
    log:
        "results/studies/{study}/logs/plot_learning_curves.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.analysis.learning_curves --tables {params.tables}"
        " --out {output.table:q} > {log:q} 2>&1"
        " && python -m rnnbench.analysis.tables learning_curves {output.table:q}"
        " --out {output.table_html:q} >> {log:q} 2>&1"
        " && python -m rnnbench.figures.draw learning_curves --tables {params.tables}"
        " --out {output.png:q} >> {log:q} 2>&1"


if study.published:

    rule plot_reproduction:
        input:
            runs=rules.collect_metrics.output.runs,
            code=code("plot_reproduction"),
        output:
            png=report(
                "results/studies/{study}/figures/reproduction.png",
                caption="../report/reproduction.rst",
                category=figure_registry.spec("reproduction").category,
                subcategory="Figures",
                labels={"figure": figure_registry.spec("reproduction").report_label},
            ),
            svg="results/studies/{study}/figures/reproduction.svg",
        params:
            tables=input_dir,
            published=json.dumps(study.published),
        log:
            "results/studies/{study}/logs/plot_reproduction.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m rnnbench.figures.draw reproduction --tables {params.tables}"
            " --published {params.published:q} --out {output.png:q} > {log:q} 2>&1"

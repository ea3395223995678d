# The answer across sizes (rnnbench.analysis.sizes, rnnbench.figures.sizes): for experiments
# with two or more sizes, one table of every model at every size, Δ against the reference with
# the whole family's intervals, and three figures against the parameter count. Needs
# common.smk and aggregate.smk (compare_models's tables).
# Targets only for experiments with several sizes (budgets or hidden sizes), where this table
# means something: study.size_targets() (rnnbench.workflow.jobs, SIZE_FIGURES).


rule compare_sizes:
    input:
        models=rules.compare_models.output.models,
        pairs=rules.compare_models.output.pairs,
        runs=rules.collect_metrics.output.runs,
        code=code("compare_sizes"),
    output:
        html=report(
            "results/studies/{study}/tables/sizes.html",
            caption="../report/sizes.rst",
            category="Tables",
            subcategory="Tables",
            labels={"table": "every model at every size (Δ with the whole family's CIs)"},
        ),
        csv=report(
            "results/studies/{study}/tables/sizes.csv",
            caption="../report/sizes.rst",
            category="Tables",
            subcategory="Tables",
            labels={"table": "every model at every size (CSV, every column)"},
        ),
        md="results/studies/{study}/tables/sizes.md",
        # what bf16 costs, where a model trains in both precisions (scaling_fp32)
        precision_html=report(
            "results/studies/{study}/tables/precision_check.html",
            caption="../report/precision_check.rst",
            category="Tables",
            subcategory="Tables",
            labels={"table": "bf16 against fp32 on this protocol"},
        ),
        precision=report(
            "results/studies/{study}/tables/precision_check.csv",
            caption="../report/precision_check.rst",
            category="Tables",
            subcategory="Tables",
            labels={"table": "bf16 against fp32 on this protocol (CSV, every column)"},
        ),
        precision_md="results/studies/{study}/tables/precision_check.md",
    params:
        tables=input_dir,
    log:
        "results/studies/{study}/logs/compare_sizes.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.analysis.sizes --tables {params.tables} > {log:q} 2>&1"


rule plot_sizes:
    input:
        sizes=rules.compare_sizes.output.csv,
        runs=rules.collect_metrics.output.runs,
        code=code("plot_sizes"),
    output:
        png=report(
            "results/studies/{study}/figures/{figure}.png",
            caption="../report/{figure}.rst",
            category="Perplexity",
            subcategory="Figures",
            labels={"figure": "{figure}"},
        ),
        svg="results/studies/{study}/figures/{figure}.svg",
    wildcard_constraints:
        figure="|".join(SIZE_FIGURES),
    params:
        tables=input_dir,
    log:
        "results/studies/{study}/logs/plot_{figure}.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.figures.draw {wildcards.figure} --tables {params.tables}"
        " --out {output.png:q} > {log:q} 2>&1"

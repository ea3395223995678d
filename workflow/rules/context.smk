# Effective context (Khandelwal et al. 2018): per evaluated run, the loss increase when the
# context is truncated to (or shuffled beyond) the last k tokens; a table across runs, a figure
# from it. Needs common.smk (study, code, ...). Off with `context: false`.
# The runs measured: study.context_dirs, every run, or with `source: reference` those
# published with their context files (rnnbench.workflow.pipeline.Study, which also checks
# that the validation split holds the sample, before any job).
from rnnbench.figures import registry as figure_registry


rule measure_context:
    input:
        model="results/runs/{corpus}/{experiment}/{run}/model.pt",
        meta="results/runs/{corpus}/{experiment}/{run}/train.json",
        data=["results/data/{corpus}/valid.pt"],
    output:
        table="results/runs/{corpus}/{experiment}/{run}/context.csv",
        meta="results/runs/{corpus}/{experiment}/{run}/context.json",
    params:
        data_dir=data_dir,
        device=config.get("device", "auto"),
        # targets, prefix, seed, resamples (rnnbench.diagnostics.context_stats.ContextSettings)
        settings=study.context.flags() if study.context else "",
        # the weights the experiment's perplexities are measured with
        weights=lambda w: config["experiments"][w.experiment].get("eval_weights", "best"),
    # a finished run is measured and published before the next run starts training
    priority: 10
    log:
        "results/logs/measure_context/{corpus}/{experiment}/{run}.log",
    benchmark:
        "results/benchmarks/measure_context/{corpus}/{experiment}/{run}.tsv"
    threads: 1
    resources:
        gpu=study.uses_gpu,
        mem_mb=study.train_mem_mb,
        runtime=20,
    conda:
        "../../environment.yml"
    shell:
        "exec python -m rnnbench.diagnostics.context"
        " --run-dir results/runs/{wildcards.corpus}/{wildcards.experiment}/{wildcards.run}"
        " --data-dir {params.data_dir} {params.settings} --weights {params.weights}"
        " --device {params.device} --threads {threads} --out {output.table:q}"
        " --meta-out {output.meta:q} > {log:q} 2>&1"


rule collect_context:
    input:
        table=[f"{d}/context.csv" for d in study.context_dirs],
        meta=[f"{d}/context.json" for d in study.context_dirs],
        # the summary across seeds is rebuilt from these, as collect_metrics builds it
        train=[f"{d}/train.json" for d in study.context_dirs],
        eval=[f"{d}/eval.json" for d in study.context_dirs],
        history=[f"{d}/history.csv" for d in study.context_dirs],
        code=code("collect_context"),
    output:
        table="results/studies/{study}/tables/context.csv",
        # the readable table shown in the report; the CSV beside it is the full download
        summary_html=report(
            "results/studies/{study}/tables/context_summary.html",
            caption="../report/context_summary.rst",
            category="Gradients",
            subcategory="Tables",
            labels={"table": "effective context across seeds"},
        ),
        summary=report(
            "results/studies/{study}/tables/context_summary.csv",
            caption="../report/context_summary.rst",
            category="Gradients",
            subcategory="Tables",
            labels={"table": "effective context across seeds (CSV, every column)"},
        ),
    params:
        tables=output_dir,
        run_dirs=study.context_dirs,
    log:
        "results/studies/{study}/logs/collect_context.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.analysis.context_tables --out-dir {params.tables}"
        " {params.run_dirs:q} > {log:q} 2>&1 && python -m rnnbench.analysis.tables context_summary"
        " {output.summary:q} --out {output.summary_html:q} >> {log:q} 2>&1"


rule plot_context:
    input:
        table=rules.collect_context.output.table,
        code=code("plot_context"),
    output:
        png=report(
            "results/studies/{study}/figures/context_vs_k.png",
            caption="../report/context_vs_k.rst",
            category=figure_registry.spec("context_vs_k").category,
            subcategory="Figures",
            labels={"figure": figure_registry.spec("context_vs_k").report_label},
        ),
        svg="results/studies/{study}/figures/context_vs_k.svg",
    params:
        tables=input_dir,
    log:
        "results/studies/{study}/logs/plot_context.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.figures.draw context_vs_k --tables {params.tables}"
        " --out {output.png:q} > {log:q} 2>&1"

# Gradient diagnostics: gradient through time per run (trained and at init), tables across
# runs, figures from the tables. Needs common.smk (study, code, ...).
from rnnbench.figures import registry as figure_registry

# Figures: GRADIENT_FIGURES (rnnbench.workflow.jobs), each with its caption
# workflow/report/{name}.rst, all in the report's "Gradients" category.


rule measure_gradients:
    input:
        model="results/runs/{corpus}/{experiment}/{run}/model.pt",
        meta="results/runs/{corpus}/{experiment}/{run}/train.json",
        data=["results/data/{corpus}/valid.pt"],
    output:
        grads="results/runs/{corpus}/{experiment}/{run}/gradients.csv",
        decay="results/runs/{corpus}/{experiment}/{run}/decay.csv",
        meta="results/runs/{corpus}/{experiment}/{run}/gradients.json",
    params:
        data_dir=data_dir,
        device=config.get("device", "auto"),
        # Lags 0..100, past the training bptt of 35; 2 windows x 20 columns of held-out text,
        # each after 35 warm-up tokens; float64 so long lags do not underflow. About 1.5 s
        # (hidden 32) to 12 s (two-layer LSTM, hidden 650) per run on one CPU core.
        settings="--max-lag 100 --windows 2 --batch 20 --warmup 35 --dtype float64",
    # a finished run is measured and published before the next run starts training
    priority: 10
    log:
        "results/logs/measure_gradients/{corpus}/{experiment}/{run}.log",
    benchmark:
        "results/benchmarks/measure_gradients/{corpus}/{experiment}/{run}.tsv"
    threads: 1
    resources:
        gpu=study.uses_gpu,
        mem_mb=study.train_mem_mb,
        runtime=20,
    conda:
        "../../environment.yml"
    shell:
        "exec python -m rnnbench.diagnostics.gradients"
        " --run-dir results/runs/{wildcards.corpus}/{wildcards.experiment}/{wildcards.run}"
        " --data-dir {params.data_dir} {params.settings} --device {params.device}"
        " --threads {threads} --out {output.grads:q} --decay-out {output.decay:q}"
        " --meta-out {output.meta:q} > {log:q} 2>&1"


rule collect_gradients:
    input:
        grads=study.run_files("gradients.csv"),
        decay=study.run_files("decay.csv"),
        spectra=study.run_files("spectra.csv"),
        # per-step norms, or their quantiles in a published reference run
        steps=study.run_files("steps.csv.gz", published="grad_quantiles.csv"),
        train=study.run_files("train.json"),
        # the code that builds the tables: editing it rebuilds them (not the measurements)
        code=code("collect_gradients"),
    output:
        grads="results/studies/{study}/tables/grad_through_time.csv",
        decay=report(
            "results/studies/{study}/tables/grad_decay.csv",
            caption="../report/grad_decay_table.rst",
            category="Gradients",
            subcategory="Tables",
            labels={"table": "gradient decay rates (CSV, every run)"},
        ),
        # the same, rounded and readable, inside the report
        decay_html=report(
            "results/studies/{study}/tables/grad_decay.html",
            caption="../report/grad_decay_summary.rst",
            category="Gradients",
            subcategory="Tables",
            labels={"table": "gradient decay rates"},
        ),
        spectra="results/studies/{study}/tables/spectra.csv",
        steps="results/studies/{study}/tables/grad_steps.csv",
    params:
        tables=output_dir,
        run_dirs=study.run_dirs(),
    log:
        "results/studies/{study}/logs/collect_gradients.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.analysis.gradtables --out-dir {params.tables} {params.run_dirs:q}"
        " > {log:q} 2>&1 && python -m rnnbench.analysis.tables grad_decay {output.decay:q}"
        " --out {output.decay_html:q} >> {log:q} 2>&1"


for _grad_figure in GRADIENT_FIGURES:

    rule:
        name:
            f"plot_{_grad_figure}"
        input:
            tables=rules.collect_gradients.output,
            # which runs diverged (and at which step), for the figures' notes
            runs=rules.collect_metrics.output.runs,
            code=code(f"plot_{_grad_figure}"),
        output:
            png=report(
                f"results/studies/{{study}}/figures/{_grad_figure}.png",
                caption=f"../report/{_grad_figure}.rst",
                category=figure_registry.spec(_grad_figure).category,
                subcategory="Figures",
                labels={"figure": figure_registry.spec(_grad_figure).report_label},
            ),
            svg=f"results/studies/{{study}}/figures/{_grad_figure}.svg",
        params:
            tables=input_dir,
            figure=_grad_figure,
        log:
            f"results/studies/{{study}}/logs/plot_{_grad_figure}.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m rnnbench.figures.draw {params.figure} --tables {params.tables}"
            " --out {output.png:q} > {log:q} 2>&1"

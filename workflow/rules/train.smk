# Training and evaluation, one job each per run.


rule train_model:
    input:
        data=multiext("results/data/{corpus}/", "train.pt", "valid.pt", "vocab.txt"),
        # a tuned experiment's final run: the point its model's tuning selected (tuning.smk)
        selection=final_selection,
    output:
        history="results/runs/{corpus}/{experiment}/{run}/history.csv",
        steps="results/runs/{corpus}/{experiment}/{run}/steps.csv.gz",
        grad_stats="results/runs/{corpus}/{experiment}/{run}/grad_stats.csv",
        spectra="results/runs/{corpus}/{experiment}/{run}/spectra.csv",
        model="results/runs/{corpus}/{experiment}/{run}/model.pt",
        meta="results/runs/{corpus}/{experiment}/{run}/train.json",
    params:
        args=study.train_args,
        data_dir=data_dir,
        # Outside the outputs: Snakemake deletes a failed job's outputs, not this file, so
        # a killed or preempted job resumes from it when rerun.
        checkpoint="results/checkpoints/{corpus}/{experiment}/{run}.pt",
    log:
        "results/logs/train_model/{corpus}/{experiment}/{run}.log",
    benchmark:
        "results/benchmarks/train_model/{corpus}/{experiment}/{run}.tsv"
    # a run with a checkpoint (stopped earlier) resumes before new runs start
    priority: study.resume_priority
    threads: 1
    resources:
        gpu=study.uses_gpu,
        mem_mb=study.train_mem_mb,
        runtime=study.train_runtime,
    conda:
        "../../environment.yml"
    shell:
        # On failure this attempt's error paragraph (ERROR lines, else the log's last lines)
        # is also printed to the terminal, as corpus.smk's rules do. So the shell stays: the
        # trainer runs in the background, and a SIGTERM/SIGINT to the shell (Snakemake, SLURM)
        # is passed on to it, which checkpoints (exit 75: retried, resumed).
        # The trap comes first: a signal that lands before the trainer has started, or before
        # its handler is installed, still ends in 75 (nothing trained, nothing lost: retry).
        " pid=; stop=; trap 'stop=1; [ -z \"$pid\" ] || kill -TERM $pid 2>/dev/null' TERM INT;"
        " n=$(( $( {{ wc -l < {log:q}; }} 2>/dev/null || echo 0) + 1 ));"
        " python -m rnnbench.training.train {params.args} --data-dir {params.data_dir}"
        " --run-dir results/runs/{wildcards.corpus}/{wildcards.experiment}/{wildcards.run}"
        " --run-id {wildcards.run} --checkpoint {params.checkpoint} --threads {threads}"
        # In a SLURM job, stop before its time limit (the runtime, minutes): checkpoint and
        # exit 75; the retry gets more runtime and resumes. Not outside SLURM: nothing
        # enforces the runtime there.
        " ${{SLURM_JOB_ID:+--time-limit-s $(({resources.runtime} * 60))}}"
        " >> {log:q} 2>&1 & pid=$!; [ -z \"$stop\" ] || kill -TERM $pid 2>/dev/null;"
        " rc=0; while kill -0 $pid 2>/dev/null; do wait $pid && rc=0 || rc=$?; done;"
        # killed by the signal itself (128 + TERM or INT) before it could checkpoint
        " [ -z \"$stop\" ] || [ $rc -ne 143 -a $rc -ne 130 ] || rc=75;"
        " [ $rc -eq 0 ] || grep ' ERROR ' <(tail -n +$n {log:q}) >&2"
        " || tail -n +$n {log:q} | tail -n 20 >&2; exit $rc"


rule evaluate_model:
    input:
        model="results/runs/{corpus}/{experiment}/{run}/model.pt",
        meta="results/runs/{corpus}/{experiment}/{run}/train.json",
        data=multiext("results/data/{corpus}/", "valid.pt", "test.pt", "vocab.txt"),
    output:
        "results/runs/{corpus}/{experiment}/{run}/eval.json",
    params:
        data_dir=data_dir,
        device=config.get("device", "auto"),
        extra=study.eval_args,
    # a finished run is measured and published before the next run starts training
    priority: 10
    log:
        "results/logs/evaluate_model/{corpus}/{experiment}/{run}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{corpus}/{experiment}/{run}.tsv"
    threads: 1
    resources:
        gpu=study.uses_gpu,
        mem_mb=study.train_mem_mb,
        runtime=20,
    conda:
        "../../environment.yml"
    shell:
        # exec: a kill of the job kills the evaluator too, which must not write eval.json after
        # Snakemake has marked the job failed
        "exec python -m rnnbench.diagnostics.evaluate"
        " --run-dir results/runs/{wildcards.corpus}/{wildcards.experiment}/{wildcards.run}"
        " --data-dir {params.data_dir} --device {params.device} --threads {threads}"
        " {params.extra} --out {output:q} > {log:q} 2>&1"

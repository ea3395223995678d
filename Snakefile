# rnnbench: recurrent language models (vanilla RNN, LSTM, GRU) on Penn Treebank.
#
#   snakemake --cores N --configfile config/quick.yaml    a tiny grid, a few minutes on a CPU
#   snakemake --configfile config/quick.yaml --report results/report.html   its HTML report
#   snakemake --cores N                                   the default: the study across sizes
#                                                         (config/scaling.yaml; ~38 h on 2 CPUs)
#   snakemake --report results/report.html                the default grid's report
# Give --report the same --configfile as the run: without one it reports the default config.
# A target goes before --config, which takes every word after it as a key=value:
#   snakemake results/data/ptb/stats.json --cores N --config mirror=/data/ptb
# A run starts with a plan (runs, device, estimated time: rnnbench.workflow.plan) and a dry run
# (-n) ends with it; as runs finish, a line says how many are done and the time left. Ctrl-C (once)
# stops every trainer with a checkpoint; rerun the same command to resume
# (rnnbench.workflow.progress).
#
# results/
#   data/{corpus}/raw/{split}.txt          verified corpus files (download_corpus)
#   data/{corpus}/{split}.pt, vocab.txt, stats.json      token ids (tokenize_corpus)
#   runs/{corpus}/{experiment}/{run}/      one folder per training run (train_model, ...):
#       history.csv  steps.csv.gz  grad_stats.csv  spectra.csv  model.pt  train.json
#       eval.json (evaluate_model)  gradients.csv  decay.csv  gradients.json (measure_gradients)
#       context.csv  context.json (measure_context; off with `context: false`)
#   checkpoints/{corpus}/{experiment}/{run}.pt   resumable state while a run trains (not an output)
#   tuning/{corpus}/{experiment}/{model}/rung{r}.json   a tuned model's ranking per rung
#   studies/{study}/                     one folder per config (key `study`, default: the
#                                        config file's name), so configs never share a table;
#                                        study.json names the config that made it:
#   studies/{study}/tables/  runs.csv  summary.csv  summary.md  summary.html  epochs.csv  grad_norms.csv
#              (collect_metrics)   models.csv  comparisons.csv  comparisons.md  comparisons.html
#              (compare_models)   trials.csv  trials.html (collect_trials, tuned configs)
#            learning_curves.csv  learning_curves.html (plot_learning_curves)
#            grad_through_time.csv  grad_decay.csv  grad_decay.html  spectra.csv  grad_steps.csv
#              (collect_gradients)   context.csv  context_summary.csv  context_summary.html
#              (collect_context)
#   reference/{experiment}/{run}/          published small files (configs with `publish`)
#   studies/{study}/figures/*.png, *.svg   built from the tables only (plot_*)
#   logs/{rule}/...  (per run)   studies/{study}/logs/ (tables and figures)
#
# Run ids: {cell}-h{hidden}-l{layers}[-{axis}{value}...]-s{seed}, e.g. lstm-h300-l1-s1;
# with recurrent-parameter budgets {cell}-p{budget}-l{layers}-..., e.g. lstm-p250k-l1-s1.

from snakemake.utils import min_version

min_version("9.0")


# A --configfile on the command line (e.g. config/quick.yaml) replaces the default config
# instead of being merged into it, so the quick grid does not pull in the default study's runs.
# The default is the benchmark's answer: the study across sizes (config/scaling.yaml).
if "experiments" not in config:

    configfile: f"{workflow.basedir}/config/scaling.yaml"


# The report's landing page: what was compared, where the answer is, where numbers come from.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/tuning.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/gradients.smk"
include: "workflow/rules/context.smk"
include: "workflow/rules/sizes.smk"
include: "workflow/rules/publish.smk"


onstart:
    start_session(logger)


rule all:
    input:
        all_targets(),
    default_target: True

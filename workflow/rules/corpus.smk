# Corpus: fetch and verify the three files, then turn them into id tensors.

# On a cluster, download where the internet is (compute nodes often have none).
localrules:
    download_corpus,


rule download_corpus:
    # A local file is an input: once edited (newer than its copy) it is copied again, and
    # tokenize_corpus and everything after it rerun. A network URL has none.
    input:
        study.corpus_source,
    output:
        "results/data/{corpus}/raw/{split}.txt",
    params:
        url=study.corpus_url,
    log:
        "results/logs/download_corpus/{corpus}-{split}.log",
    conda:
        "../../environment.yml"
    # The checksum comes from the environment (see common.smk), so adding it reruns nothing.
    # On failure the log's error paragraph is also printed to the terminal.
    shell:
        "python -m rnnbench.data.download --url {params.url:q}"
        ' --sha256="$RNNBENCH_SHA256_{wildcards.split}" --out {output:q} > {log:q} 2>&1'
        " || {{ grep ' ERROR ' {log:q} >&2 || tail -n 20 {log:q} >&2; exit 1; }}"


rule tokenize_corpus:
    input:
        train="results/data/{corpus}/raw/train.txt",
        valid="results/data/{corpus}/raw/valid.txt",
        test="results/data/{corpus}/raw/test.txt",
    output:
        multiext(
            "results/data/{corpus}/",
            "train.pt",
            "valid.pt",
            "test.pt",
            "vocab.txt",
            "stats.json",
        ),
    params:
        max_vocab=lambda wildcards: config["corpus"].get("max_vocab") or "",
    log:
        "results/logs/tokenize_corpus/{corpus}.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.data.tokenizer --train {input.train:q} --valid {input.valid:q}"
        " --test {input.test:q} --max-vocab={params.max_vocab}"
        " --out-dir results/data/{wildcards.corpus} > {log:q} 2>&1"
        " || {{ grep ' ERROR ' {log:q} >&2 || tail -n 20 {log:q} >&2; exit 1; }}"
        # its warnings (<unk> in valid/test that train never has) reach the terminal too
        "; grep ' WARNING ' {log:q} >&2 || true"

# Corpus: fetch and verify the three files, then turn them into id tensors.

# On a cluster, download where the internet is (compute nodes often have none).
localrules:
    download_corpus,


rule download_corpus:
    output:
        "results/data/{corpus}/raw/{split}.txt",
    params:
        url=corpus_url,
        sha256=corpus_sha256,
    log:
        "results/logs/download_corpus/{corpus}-{split}.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m rnnbench.download --url {params.url:q} --sha256={params.sha256}"
        " --out {output:q} > {log:q} 2>&1"


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
        "python -m rnnbench.tokenizer --train {input.train:q} --valid {input.valid:q}"
        " --test {input.test:q} --max-vocab={params.max_vocab}"
        " --out-dir results/data/{wildcards.corpus} > {log:q} 2>&1"

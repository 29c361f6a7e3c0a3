rule prepare_data:
    output:
        DATA_FILE,
    input:
        code=CODE["data"],
    params:
        # What the content depends on; data_root and download are read from the config by
        # the script, so that where the files were found never makes the dataset stale.
        dataset=config["dataset"],
        subset=config["data_subset"],
        keep_dir=DATA_KEEP_DIR,
    benchmark:
        BENCHMARKS["prepare_data"]
    log:
        f"{LOG_DIR}/prepare_data.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/prepare_data.py"


rule code_digest:
    localrule: True
    output:
        CODE_DIGEST,
    input:
        lambda wildcards: CODE_FILES[wildcards.kind],
    wildcard_constraints:
        kind="|".join(CODE_FILES),
    log:
        f"{LOG_DIR}/code_digest/{{kind}}.log",
    run:
        from clexp.files import code_digest, write_text

        digest = code_digest(input)
        write_text(digest + "\n", output[0])
        write_text(f"{digest} of {len(input)} files: {' '.join(input)}\n", log[0])

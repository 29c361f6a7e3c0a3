rule prepare_data:
    input:
        code=CODE["data"],
    output:
        DATA_FILE,
    log:
        f"{LOG_DIR}/prepare_data.log",
    benchmark:
        BENCHMARKS["prepare_data"]
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        # What the content depends on; data_root and download are read from the config by
        # the script, so that where the files were found never makes the dataset stale.
        dataset=config["dataset"],
        subset=config["data_subset"],
        keep_dir=DATA_KEEP_DIR,
    script:
        "../scripts/prepare_data.py"


rule code_digest:
    input:
        lambda wildcards: CODE_FILES[wildcards.kind],
    output:
        CODE_DIGEST,
    log:
        f"{LOG_DIR}/code_digest/{{kind}}.log",
    wildcard_constraints:
        kind="|".join(CODE_FILES),
    localrule: True
    run:
        from clexp.files import code_digest, write_text

        digest = code_digest(input)
        write_text(digest + "\n", output[0])
        write_text(f"{digest} of {len(input)} files: {' '.join(input)}\n", log[0])

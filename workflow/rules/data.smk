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
        f"{BENCHMARK_DIR}/prepare_data.tsv"
    log:
        f"{LOG_DIR}/prepare_data.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/prepare_data.py"

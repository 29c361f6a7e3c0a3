# clexp: catastrophic forgetting of a small MLP on Split-MNIST.
#   snakemake --cores 4 results/report.html
import os

from snakemake.utils import min_version

min_version("8.20")


# Beside this file, also when a profile runs the workflow in another directory (`directory:`,
# e.g. profiles/vdv2019): the outputs go there, the study's config stays the one here.
configfile: os.path.join(workflow.basedir, "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        REPORT,
    localrule: True


# Cluster runs: one job per experiment (common.smk, profiles/slurm). Its training jobs keep
# their outputs, and a resubmitted group job restores them (clexp.kept); local runs do
# neither, whatever the environment says.
group_runs(workflow.rules)
for variable in (kept.KEEP_VARIABLE, kept.RESTORE_VARIABLE):
    os.environ.pop(variable, None)
if workflow.remote_exec:
    os.environ[kept.KEEP_VARIABLE] = TRAIN_KEPT
    if cluster_job_attempt() > 1:
        os.environ[kept.RESTORE_VARIABLE] = "1"

# Jobs fork from one warm process instead of importing torch & co. each time
# (src/clexp/jobserver.py): in local runs, and on a cluster node in a group job, whose
# members run side by side in one Snakemake. Not with conda/container deployment.
JOB_SERVER = {}
# Only this run's own server: not one announced by the environment Snakemake started in.
os.environ.pop(jobserver.SOCKET_VARIABLE, None)
JOB_SERVER_WANTED = config["job_server"] and not workflow.deployment_settings.deployment_method

# A group job's Snakemake runs no hooks (--no-hooks): its server starts here, and stops
# when that Snakemake exits (or dies: the server follows its parent).
if JOB_SERVER_WANTED and runs_group_members():
    JOB_SERVER["process"] = jobserver.start()
    atexit.register(jobserver.stop, JOB_SERVER["process"])


onstart:
    if JOB_SERVER_WANTED and workflow.local_exec and workflow.is_main_process:
        JOB_SERVER["process"] = jobserver.start()


onsuccess:
    jobserver.stop(JOB_SERVER.pop("process", None))


onerror:
    jobserver.stop(JOB_SERVER.pop("process", None))

/* The command table, option parsing from data, help texts and dispatch (docs/internals/style.md
 * §7). */
#include "cli-internal.h"

#include <getopt.h>
#include <stdarg.h>
#include <string.h>

static const cmd_opt global_opts[] = {
        {"help", 'h', CMD_OPT_FLAG, NULL, "show this help"},
        {"debug", 0, CMD_OPT_FLAG, NULL, "log every request and decision to stderr"},
        {"quiet", 'q', CMD_OPT_FLAG, NULL, "print only data and errors"},
        {"insecure-registry", 0, CMD_OPT_LIST, "HOST[:PORT]",
         "allow a registry without TLS verification (repeatable; also MAR_INSECURE_REGISTRIES)"},
        {"tls-registry", 0, CMD_OPT_LIST, "HOST[:PORT]",
         "use verified HTTPS for a loopback registry (repeatable; also MAR_TLS_REGISTRIES)"},
        {"binfmt-root", 0, CMD_OPT_VALUE, "DIR",
         "binfmt_misc mount point (default $MAR_BINFMT_ROOT or " BINFMT_DEFAULT_ROOT ")"},
        {"store", 0, CMD_OPT_VALUE, "DIR",
         "the content store (default $MAR_STORE, /var/lib/mar as root, else "
         "$XDG_DATA_HOME/mar)"},
};

static const cmd_opt inspect_opts[] = {
        {"platform", 'p', CMD_OPT_VALUE, "PLATFORM",
         "mark the entry `mar run --platform PLATFORM` would pick (os/arch[/variant])"},
        {"target", 't', CMD_OPT_VALUE, "TARGET",
         "evaluate for another machine: a platform, PLATFORM+qemu, apple-silicon, "
         "apple-silicon-qemu or intel-mac"},
        {"json", 0, CMD_OPT_FLAG, NULL, "print the report as JSON (docs/mar-inspect.1.md)"},
        {"raw", 0, CMD_OPT_FLAG, NULL, "print the manifest or index bytes exactly as served"},
        {"deep", 0, CMD_OPT_FLAG, NULL,
         "read the layers and check the binaries against each label (streams every layer)"},
        {"jobs", 'j', CMD_OPT_VALUE, "N", "parallel layer downloads for --deep (default 8)"},
};

static const cmd_opt binfmt_status_cmd_opts[] = {
        {"json", 0, CMD_OPT_FLAG, NULL, "print the status as JSON (docs/mar-binfmt.1.md)"},
        {"no-probe", 0, CMD_OPT_FLAG, NULL, "do not run the exec probes"},
};

static const cmd_opt binfmt_install_cmd_opts[] = {
        {"emulator", 'e', CMD_OPT_VALUE, "qemu|rosetta", "what to register (default qemu)"},
        {"qemu-path", 0, CMD_OPT_VALUE, "DIR",
         "directory of the qemu-<cpu>-static programs (default /usr/bin, Debian's "
         "qemu-user-static)"},
        {"rosetta-path", 0, CMD_OPT_VALUE, "FILE",
         "the Rosetta program (default /mnt/lima-rosetta/rosetta, as Lima mounts it)"},
        {"allow-setuid", 0, CMD_OPT_FLAG, NULL,
         "register with C: setuid programs work, and run the emulator as root"},
        {"preserve-argv0", 0, CMD_OPT_FLAG, NULL,
         "register with P through Debian's /usr/libexec/qemu-binfmt/<cpu>-binfmt-P links"},
        {"replace-handler", 0, CMD_OPT_VALUE, "NAME",
         "put mar's entry in front of this existing entry (it is never removed)"},
};

static const cmd_opt pull_opts[] = {
        {"platform", 'p', CMD_OPT_LIST, "PLATFORM[,...]",
         "the platforms to pull (repeatable; default: this host's best match)"},
        {"all-platforms", 'a', CMD_OPT_FLAG, NULL, "pull every runnable platform of an index"},
        {"no-unpack", 0, CMD_OPT_FLAG, NULL, "store the blobs only"},
        {"jobs", 'j', CMD_OPT_VALUE, "N", "parallel downloads (default 4)"},
        {"json", 0, CMD_OPT_FLAG, NULL, "print what was pulled as JSON (docs/mar-pull.1.md)"},
};

static const cmd_opt push_opts[] = {
        {"platform", 'p', CMD_OPT_LIST, "PLATFORM[,...]",
         "push only these entries of an index, as a new index (repeatable)"},
        {"all-platforms", 'a', CMD_OPT_FLAG, NULL, "push the whole index as stored (the default)"},
        {"jobs", 'j', CMD_OPT_VALUE, "N", "parallel uploads (default 4)"},
        {"json", 0, CMD_OPT_FLAG, NULL, "print what was pushed as JSON (docs/mar-push.1.md)"},
};

static const cmd_opt copy_opts[] = {
        {"platform", 'p', CMD_OPT_LIST, "PLATFORM[,...]",
         "copy only these entries of an index, as a new index (repeatable)"},
        {"all-platforms", 'a', CMD_OPT_FLAG, NULL, "copy the whole image (the default)"},
        {"jobs", 'j', CMD_OPT_VALUE, "N", "parallel blob transfers (default 4)"},
        {"json", 0, CMD_OPT_FLAG, NULL, "print what was copied as JSON (docs/mar-copy.1.md)"},
};

static const cmd_opt index_create_opts[] = {
        {"append", 0, CMD_OPT_FLAG, NULL, "add to the index DST names"},
        {"replace", 0, CMD_OPT_FLAG, NULL, "a later source replaces an entry of its platform"},
        {"remove", 0, CMD_OPT_LIST, "PLATFORM[,...]",
         "drop the entries of a platform, with their attestations (repeatable)"},
        {"annotation", 0, CMD_OPT_LIST, "KEY=VALUE", "an index annotation (repeatable)"},
        {"dry-run", 'n', CMD_OPT_FLAG, NULL, "print the index JSON, push nothing"},
        {"jobs", 'j', CMD_OPT_VALUE, "N", "blob mounts and manifests in flight (default 16)"},
        {"json", 0, CMD_OPT_FLAG, NULL, "print the result as JSON (docs/mar-index.1.md)"},
};

static const cmd_opt tag_opts[] = {
        {"local", 0, CMD_OPT_FLAG, NULL, "name the image in the store only"},
        {"remote", 0, CMD_OPT_FLAG, NULL, "name the image in its registry only"},
        {"jobs", 'j', CMD_OPT_VALUE, "N", "parallel blob mounts across repositories (default 4)"},
        {"json", 0, CMD_OPT_FLAG, NULL, "print the result as JSON (docs/mar-tag.1.md)"},
};

static const cmd_opt unpack_opts[] = {
        {"platform", 'p', CMD_OPT_LIST, "PLATFORM",
         "the platform to unpack (default: this host's)"},
        {"jobs", 'j', CMD_OPT_VALUE, "N", "parallel downloads when pulling (default 4)"},
};

static const cmd_opt images_opts[] = {
        {"json", 0, CMD_OPT_FLAG, NULL, "print the list as JSON (docs/mar-images.1.md)"},
};

static const cmd_opt gc_opts[] = {
        {"dry-run", 'n', CMD_OPT_FLAG, NULL, "say what would be removed, remove nothing"},
        {"verify", 0, CMD_OPT_FLAG, NULL, "also check every blob against its digest"},
        {"prune-cache", 0, CMD_OPT_FLAG, NULL,
         "also remove mar build's step cache records and what only they kept"},
};

static const cmd_opt run_opts[] = {
        {"platform", 'p', CMD_OPT_LIST, "PLATFORM", "the platform to run (default: this host's)"},
        {"env", 'e', CMD_OPT_LIST, "KEY[=VALUE]",
         "set a variable (repeatable; KEY alone copies mar's own value)"},
        {"env-file", 0, CMD_OPT_LIST, "FILE", "read KEY=VALUE lines from a file (repeatable)"},
        {"entrypoint", 0, CMD_OPT_VALUE, "PROGRAM",
         "replace the image's ENTRYPOINT (its CMD is dropped too)"},
        {"workdir", 'w', CMD_OPT_VALUE, "DIR", "working directory inside the container"},
        {"user", 'u', CMD_OPT_VALUE, "USER[:GROUP]",
         "run as this user (names from the image's /etc/passwd and /etc/group)"},
        {"name", 0, CMD_OPT_VALUE, "NAME", "the container's name (default mar-<random>)"},
        {"interactive", 'i', CMD_OPT_FLAG, NULL, "keep stdin open and pass it to the container"},
        {"tty", 't', CMD_OPT_FLAG, NULL, "give the container a terminal"},
        {"network", 0, CMD_OPT_VALUE, "host|none",
         "the host's network (default) or only a loopback interface"},
        {"volume", 'v', CMD_OPT_LIST, "HOST:CTR[:ro]", "bind-mount a host path (repeatable)"},
        {"keep", 0, CMD_OPT_FLAG, NULL, "keep the container, task and upper directory afterwards"},
        {"security-opt", 0, CMD_OPT_LIST, "OPT",
         "seccomp=unconfined|builtin|FILE, no-new-privileges[=true|false] (repeatable)"},
        {"explain", 0, CMD_OPT_FLAG, NULL,
         "print the plan (manifest, native or emulated, why) and run nothing"},
        {"json", 0, CMD_OPT_FLAG, NULL, "with --explain: the plan as JSON"},
        {"target", 0, CMD_OPT_VALUE, "TARGET",
         "with --explain: plan for another machine (as mar inspect --target)"},
        {"address", 0, CMD_OPT_VALUE, "SOCKET",
         "containerd's socket (default $CONTAINERD_ADDRESS or /run/containerd/containerd.sock)"},
        {"namespace", 'n', CMD_OPT_VALUE, "NS",
         "containerd namespace (default $CONTAINERD_NAMESPACE or mar)"},
        {"jobs", 'j', CMD_OPT_VALUE, "N", "parallel downloads when pulling (default 4)"},
        {"pull", 0, CMD_OPT_VALUE, "always|missing|never",
         "pull first: always, when the store lacks the platform asked for (default), or never"},
};

static const cmd_opt build_opts[] = {
        {"platform", 'p', CMD_OPT_LIST, "PLATFORM[,...]",
         "the platforms to build (repeatable; default: this host's)"},
        {"tag", 't', CMD_OPT_VALUE, "NAME[:TAG]", "the name the result gets in the store"},
        {"file", 'f', CMD_OPT_VALUE, "FILE",
         "the Dockerfile (default CONTEXT/Dockerfile, else CONTEXT/Containerfile; - for stdin)"},
        {"build-arg", 0, CMD_OPT_LIST, "KEY=VALUE", "set a build argument (repeatable)"},
        {"target", 0, CMD_OPT_VALUE, "STAGE", "build this stage (default: the last one)"},
        {"source-date-epoch", 0, CMD_OPT_VALUE, "SECONDS",
         "fix the creation times and clamp file times (default $SOURCE_DATE_EPOCH)"},
        {"output", 'o', CMD_OPT_LIST, "type=oci-layout,dest=DIR|type=oci,dest=FILE",
         "also write the result as an OCI image layout directory or tar (repeatable)"},
        {"secret", 0, CMD_OPT_LIST, "id=ID,src=FILE|id=ID,env=VAR",
         "a secret for RUN --mount=type=secret (repeatable; never written to a layer)"},
        {"push", 0, CMD_OPT_FLAG, NULL, "then push NAME to its registry (as mar push)"},
        {"push-by-digest", 0, CMD_OPT_FLAG, NULL,
         "then push each platform's image untagged to NAME's repository, printing the digests"},
        {"explain", 0, CMD_OPT_FLAG, NULL,
         "print how each stage's RUN steps would execute here, and build nothing"},
        {"json", 0, CMD_OPT_FLAG, NULL, "with --explain: the plan as JSON"},
        {"build-machine", 0, CMD_OPT_VALUE, "TARGET",
         "with --explain: plan for the machine that would build (apple-silicon[:macosN], "
         "apple-silicon-qemu, intel-mac, PLATFORM[+qemu], as mar inspect --target); "
         "$BUILDPLATFORM is its platform"},
        {"no-cache", 0, CMD_OPT_FLAG, NULL, "run every step; still record the results"},
        {"compression", 0, CMD_OPT_VALUE, "gzip|zstd",
         "how new layers are compressed (default gzip)"},
        {"allow-mislabeled", 0, CMD_OPT_FLAG, NULL,
         "warn, instead of failing, when the build adds ELF files of another architecture"},
        {"security-opt", 0, CMD_OPT_LIST, "OPT",
         "for RUN steps: seccomp=unconfined|builtin|FILE, no-new-privileges[=true|false]"},
        {"address", 0, CMD_OPT_VALUE, "SOCKET",
         "containerd's socket (default $CONTAINERD_ADDRESS or /run/containerd/containerd.sock)"},
        {"namespace", 'n', CMD_OPT_VALUE, "NS",
         "containerd namespace (default $CONTAINERD_NAMESPACE or mar)"},
        {"jobs", 'j', CMD_OPT_VALUE, "N",
         "downloads when pulling bases (default 4); stages built at once, over all platforms "
         "(default all that can)"},
};

static const cmd_opt check_opts[] = {
        {"platforms", 'P', CMD_OPT_VALUE, "P[,P...]", "the platforms every image must offer"},
        {"file", 'f', CMD_OPT_LIST, "FILE",
         "read image references from FILE, one per line, # comments (repeatable; - for stdin)"},
        {"deep", 0, CMD_OPT_FLAG, NULL, "also check the binaries of each required entry"},
        {"json", 0, CMD_OPT_FLAG, NULL, "print the results as JSON (docs/mar-check.1.md)"},
        {"junit", 0, CMD_OPT_VALUE, "FILE",
         "write JUnit XML, one test case per image and platform"},
        {"jobs", 'j', CMD_OPT_VALUE, "N", "connections per registry (default 32)"},
};

static const cmd_opt audit_opts[] = {
        {"target", 't', CMD_OPT_VALUE, "TARGET",
         "the machine to audit for (default apple-silicon; a platform, apple-silicon-qemu, "
         "intel-mac)"},
        {"deep", 0, CMD_OPT_FLAG, NULL,
         "read the layers: mislabeled binaries, x86-64-v3 under Rosetta"},
        {"format", 0, CMD_OPT_VALUE, "table|json|markdown", "output format (default table)"},
        {"json", 0, CMD_OPT_FLAG, NULL, "the same as --format json"},
        {"html", 0, CMD_OPT_VALUE, "FILE", "also write a self-contained HTML report"},
        {"jobs", 'j', CMD_OPT_VALUE, "N", "connections per registry (default 32)"},
};

static const cmd_opt doctor_opts[] = {
        {"json", 0, CMD_OPT_FLAG, NULL, "print the findings as JSON (docs/mar-doctor.1.md)"},
        {"no-probe", 0, CMD_OPT_FLAG, NULL, "do not run the binfmt exec probes"},
        {"target", 't', CMD_OPT_VALUE, "TARGET",
         "judge the VM configurations and binfmt tree for another machine: apple-silicon, "
         "intel-mac, OS/ARCH"},
        {"address", 0, CMD_OPT_VALUE, "SOCKET",
         "containerd's socket (default $CONTAINERD_ADDRESS or /run/containerd/containerd.sock)"},
};

#define VM_DRIVER_OPT                                                                              \
    {                                                                                              \
        "driver", 0, CMD_OPT_VALUE, "host|lima",                                                   \
                "the VM driver (default $MAR_VM_DRIVER, else lima on macOS, host elsewhere)"       \
    }

static const cmd_opt vm_create_opts[] = {
        VM_DRIVER_OPT,
        {"cpus", 0, CMD_OPT_VALUE, "N", "CPUs (default 4)"},
        {"memory", 0, CMD_OPT_VALUE, "GiB", "memory (default 4; 4 or more for emulated amd64)"},
        {"disk", 0, CMD_OPT_VALUE, "GiB", "disk (default 100)"},
        {"arch", 0, CMD_OPT_VALUE, "host|x86_64|aarch64",
         "the VM's architecture (default host: foreign ones are fully emulated, slow)"},
        {"vm-type", 0, CMD_OPT_VALUE, "vz|qemu", "default vz on macOS, qemu elsewhere"},
        {"rosetta", 0, CMD_OPT_FLAG, NULL,
         "require Rosetta for amd64 (default: on where possible)"},
        {"no-rosetta", 0, CMD_OPT_FLAG, NULL, "amd64 through QEMU user mode instead"},
        {"mar-source", 0, CMD_OPT_VALUE, "DIR",
         "mar's source tree, mounted so the guest builds mar (default $MAR_SOURCE; none: no mar "
         "in the guest)"},
        {"print", 0, CMD_OPT_FLAG, NULL, "print the lima.yaml and create nothing"},
};

static const cmd_opt vm_status_opts[] = {
        VM_DRIVER_OPT,
        {"json", 0, CMD_OPT_FLAG, NULL, "print the status as JSON (docs/mar-vm.1.md)"},
        {"address", 0, CMD_OPT_VALUE, "SOCKET",
         "host driver: containerd's socket (default $CONTAINERD_ADDRESS or "
         "/run/containerd/containerd.sock)"},
};

static const cmd_opt vm_simple_opts[] = {VM_DRIVER_OPT};

static int cmd_help(const cmd_def *def, cmd_args *args);
static int cmd_version(const cmd_def *def, cmd_args *args);

static const cmd_def commands[] = {
        {"inspect", cmd_inspect, 1, 1, "[OPTIONS] IMAGE",
         "show every platform an image offers and how each would run here",
         "Resolves IMAGE in its registry, reads the index (or manifest), every platform's "
         "manifest\n"
         "and config, and shows per platform: the digest, the compressed size, the platform its\n"
         "config declares, and how it would run on this host (native, emulated by QEMU or Rosetta\n"
         "through binfmt_misc, or not at all). '*' marks the entry `mar run` would pick.\n"
         "Inconsistencies (a config that disagrees with its index entry, no native variant, an\n"
         "amd64-only index) are reported as warnings on stderr.",
         inspect_opts, MAR_ARRAY_SIZE(inspect_opts), false},
        {"pull", cmd_pull, 1, 1, "[OPTIONS] IMAGE",
         "download an image into the store, verified, and unpack its layers",
         "Resolves IMAGE, chooses the platforms (the host's best match by default), stores the\n"
         "index, manifests and configs, downloads the layers in parallel (resuming what an\n"
         "interrupted pull left) and unpacks each into its own directory for mar run. Nothing\n"
         "gets a name in the store before its size and digest were checked. Several mar\n"
         "processes can pull into one store at once.",
         pull_opts, MAR_ARRAY_SIZE(pull_opts), false},
        {"push", cmd_push, 1, 2, "[OPTIONS] IMAGE [DEST]",
         "upload an image of the store to its registry, or to DEST",
         "Sends only the blobs the registry lacks (in parallel, resuming broken uploads), then\n"
         "the manifests, then the index, so the tag never names an incomplete image. Documents go\n"
         "byte for byte, and every digest the registry reports is checked. An index whose entries\n"
         "are not all stored is refused unless --platform picks stored ones: those are pushed as\n"
         "a new index, with a digest of its own.",
         push_opts, MAR_ARRAY_SIZE(push_opts), false},
        {"copy", cmd_copy, 2, 2, "[OPTIONS] SRC DST",
         "copy an image between registries, OCI layouts and OCI archives",
         "SRC and DST are registry references (docker://REF or REF), OCI image layout directories\n"
         "(oci:DIR[:TAG]) or OCI archives (oci-archive:FILE[:TAG]). Between registries the blobs\n"
         "stream from one to the other (mounted within one registry) and never touch the disk.\n"
         "Documents go byte for byte, so DST gets SRC's digest, unless --platform keeps part of\n"
         "an index: that new index has a digest of its own. Attestations follow their entries.",
         copy_opts, MAR_ARRAY_SIZE(copy_opts), false},
        {"tag", cmd_tag, 2, 2, "[--local|--remote] SRC DST",
         "give an image another name, in the store or in its registry",
         "In the store when it holds SRC (both names then point at the same documents), otherwise\n"
         "in SRC's registry: in the same repository the manifest is put again under the new tag,\n"
         "in another repository of that registry its blobs are mounted first (streamed through\n"
         "this machine only where the registry refuses to mount).",
         tag_opts, MAR_ARRAY_SIZE(tag_opts), false},
        {"unpack", cmd_unpack, 2, 2, "[--platform P] IMAGE DIR",
         "flatten an image into a directory (pulling it first if needed)",
         "Applies the layers in order into DIR, which must not exist or be empty. Works without\n"
         "root (device files are then dropped with a warning). DIR appears only when every\n"
         "layer applied and matched its diff_id.",
         unpack_opts, MAR_ARRAY_SIZE(unpack_opts), false},
        {"run", cmd_run, 1, -1, "[OPTIONS] IMAGE [COMMAND [ARG...]]",
         "run an image through containerd, natively or under an emulator",
         "Pulls IMAGE when the store lacks it, picks the manifest for --platform (or this host),\n"
         "plans how it executes here (native, QEMU or Rosetta through binfmt_misc, or not at all)\n"
         "and runs it through containerd on an overlay of the store's layers. stdout and stderr\n"
         "stay apart, SIGINT, SIGTERM and SIGHUP go to the container, and mar exits with its\n"
         "status. Nothing is left behind unless --keep. A platform this host cannot run fails\n"
         "before anything is created (exit 7) with the command that would fix it.",
         run_opts, MAR_ARRAY_SIZE(run_opts), true},
        {"build", cmd_build, 1, 1, "[OPTIONS] -t NAME[:TAG] CONTEXT | --explain CONTEXT",
         "build an image for one or more platforms from a Dockerfile",
         "Executes the stages a Dockerfile needs for each --platform: base images come through\n"
         "the pull path, RUN steps run through containerd on an overlay of the stage's layers\n"
         "(natively or under the emulator mar run would use), COPY and ADD become layers\n"
         "straight from CONTEXT. The result, one image per platform and an OCI index over them,\n"
         "is tagged NAME in the store, ready for mar run --platform. What mar build does not\n"
         "support is refused before anything runs (exit 2); a failing RUN ends the build with\n"
         "its platform, stage, line and exit status (exit 1) and tags nothing.",
         build_opts, MAR_ARRAY_SIZE(build_opts), false},
        {"check", cmd_check, 0, -1, "--platforms P[,P...] [OPTIONS] IMAGE... | -f FILE",
         "fail when an image lacks a required platform or is mislabeled (a CI gate)",
         "For every image and required platform: an entry equal to the platform after\n"
         "normalization (arm64 = arm64/v8), a config that agrees with it, and with --deep\n"
         "binaries that agree too. Exit 0 when all are satisfied, 1 when something is missing or\n"
         "mislabeled, 3-9 when an image could not be checked. With GITHUB_ACTIONS=true,\n"
         "failures are also printed as workflow annotations.",
         check_opts, MAR_ARRAY_SIZE(check_opts), false},
        {"audit", cmd_audit, 1, -1, "[OPTIONS] INPUT...",
         "what every image of a project does on Apple Silicon (or another target), and what to "
         "change",
         "INPUTs are image lists, docker compose files, Kubernetes manifests or Dockerfiles\n"
         "(detected by name and content; - for stdin). Each image gets a verdict for the target:\n"
         "native, rosetta, qemu, will-fail, mislabeled, no-linux-image or error, with the files\n"
         "and lines that use it and concrete recommendations (a platform pin to drop, a newer\n"
         "tag of the same release line that has the native variant, a build to add).",
         audit_opts, MAR_ARRAY_SIZE(audit_opts), false},
        {"images", cmd_images, 0, 0, "[--json]", "list the images in the store", NULL, images_opts,
         MAR_ARRAY_SIZE(images_opts), false},
        {"rmi", cmd_rmi, 1, -1, "IMAGE...", "remove images from the store",
         "Removes the references, then everything no other reference needs (as mar gc).", NULL, 0,
         false},
        {"gc", cmd_gc, 0, 0, "[--dry-run] [--verify] [--prune-cache]",
         "remove unreferenced blobs and layers and the leftovers of interrupted runs",
         "Waits for running pulls to finish, then removes blobs and unpacked layers no reference\n"
         "in index.json or build cache record reaches, unfinished downloads and unpacks, and\n"
         "stray temporary files.",
         gc_opts, MAR_ARRAY_SIZE(gc_opts), false},
        {"doctor", cmd_doctor, 0, 0, "[--json] [--target T]",
         "find what is wrong with this machine or its Lima/colima VMs for foreign images",
         "Checks the host (and on macOS whether mar runs translated by Rosetta), the binfmt_misc\n"
         "handler of every architecture (Rosetta shadowed by QEMU, missing F, broken\n"
         "interpreters), containerd, the store, and every Lima instance ($LIMA_HOME, ~/.lima) and\n"
         "colima profile ($COLIMA_HOME, ~/.colima): QEMU VMs on Apple Silicon, foreign-arch VMs,\n"
         "Rosetta off, 2 GiB for emulated amd64, contradictory Rosetta keys. Each finding has a\n"
         "verdict (ok, warning, problem) and a fix. Exit 1 when something is a problem.",
         doctor_opts, MAR_ARRAY_SIZE(doctor_opts), false},
        {"vm create", cmd_vm_create, 0, 1, "[OPTIONS] [NAME]",
         "create a Lima VM made for running containers of every architecture",
         "Writes a lima.yaml (vz, the host's arch, Rosetta registered with binfmt_misc on Apple\n"
         "Silicon, QEMU user mode for the rest, system containerd, 4 GiB) and runs `limactl\n"
         "create`. NAME defaults to $MAR_VM, else mar. The host driver has no VM to create.",
         vm_create_opts, MAR_ARRAY_SIZE(vm_create_opts), false},
        {"vm start", cmd_vm_simple, 0, 1, "[NAME]", "start the Lima VM (limactl start)", NULL,
         vm_simple_opts, MAR_ARRAY_SIZE(vm_simple_opts), false},
        {"vm stop", cmd_vm_simple, 0, 1, "[NAME]", "stop the Lima VM (limactl stop)", NULL,
         vm_simple_opts, MAR_ARRAY_SIZE(vm_simple_opts), false},
        {"vm delete", cmd_vm_simple, 0, 1, "[NAME]", "delete the Lima VM (limactl delete --force)",
         NULL, vm_simple_opts, MAR_ARRAY_SIZE(vm_simple_opts), false},
        {"vm status", cmd_vm_status, 0, 1, "[--json] [NAME]",
         "show the machine containers run on: this host's containerd and emulators, or the Lima "
         "VM",
         NULL, vm_status_opts, MAR_ARRAY_SIZE(vm_status_opts), false},
        {"vm shell", cmd_vm_shell, 0, -1, "[NAME [COMMAND...]]",
         "a shell (or a command) inside the Lima VM (limactl shell)", NULL, vm_simple_opts,
         MAR_ARRAY_SIZE(vm_simple_opts), false},
        {"index create", cmd_index_create, 1, -1, "[OPTIONS] DST:TAG [SRC...]",
         "make one multi-platform index of several images",
         "Each SRC is a single-platform image (its config gives the platform), an index (its\n"
         "entries are merged) or SRC@sha256:... Attestation manifests follow the entries they\n"
         "describe. Sources of another repository are mounted into DST's, never downloaded. A\n"
         "platform twice is refused unless --replace. Prints DST@DIGEST of the pushed index.",
         index_create_opts, MAR_ARRAY_SIZE(index_create_opts), false},
        {"binfmt status", cmd_binfmt_status, 0, 0, "[--json] [--no-probe]",
         "show which binfmt_misc entry handles each architecture, and probe it",
         "For every architecture mar knows: the entry the kernel would use now (the newest "
         "enabled\n"
         "one whose magic matches), the entries it shadows, whether it works inside containers "
         "(the\n"
         "F flag), and what an exec probe (a tiny program of that architecture) really does.",
         binfmt_status_cmd_opts, MAR_ARRAY_SIZE(binfmt_status_cmd_opts), false},
        {"binfmt install", cmd_binfmt_install, 1, -1, "[OPTIONS] ARCH... | all",
         "register QEMU (or Rosetta) for architectures, under mar- names",
         "Registers /usr/bin/qemu-<cpu>-static (root-owned, unwritable, static) with the F flag, "
         "so\n"
         "it works inside containers. An architecture another entry already handles is left alone\n"
         "and reported; entries that are not mar's are never changed.",
         binfmt_install_cmd_opts, MAR_ARRAY_SIZE(binfmt_install_cmd_opts), false},
        {"binfmt uninstall", cmd_binfmt_uninstall, 1, -1, "ARCH... | all",
         "remove mar's registrations (mar-* entries only)", NULL, NULL, 0, false},
        {"help", cmd_help, 0, 2, "[VERB]", "show help for mar or for one verb", NULL, NULL, 0,
         false},
        {"version", cmd_version, 0, 0, "", "show the version", NULL, NULL, 0, false},
};

const cmd_def *cmd_commands(size_t *ret_n)
{
    *ret_n = MAR_ARRAY_SIZE(commands);
    return commands;
}

const cmd_opt *cmd_global_opts(size_t *ret_n)
{
    *ret_n = MAR_ARRAY_SIZE(global_opts);
    return global_opts;
}

static const cmd_def *find_command(const char *name)
{
    for (size_t i = 0; i < MAR_ARRAY_SIZE(commands); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

/* Plumbing lives under nouns ("binfmt status"): true when name is such a noun. */
static bool is_noun(const char *name)
{
    size_t l = strlen(name);
    for (size_t i = 0; i < MAR_ARRAY_SIZE(commands); i++) {
        if (strncmp(commands[i].name, name, l) == 0 && commands[i].name[l] == ' ') {
            return true;
        }
    }
    return false;
}

static void print_noun_help(const char *noun, FILE *out)
{
    size_t l = strlen(noun);
    fprintf(out, "usage: mar %s VERB [OPTIONS] [ARGS]\n\nVerbs:\n", noun);
    for (size_t i = 0; i < MAR_ARRAY_SIZE(commands); i++) {
        if (strncmp(commands[i].name, noun, l) == 0 && commands[i].name[l] == ' ') {
            fprintf(out, "  %-18s %s\n", commands[i].name, commands[i].summary);
        }
    }
}

static void print_opt_table(const cmd_opt *opts, size_t n, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        const cmd_opt *o = &opts[i];
        char left[80];
        if (o->short_name) {
            snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        } else {
            snprintf(left, sizeof(left), "    --%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        }
        if (strlen(left) > 28) {
            fprintf(out, "  %s\n  %-28s  %s\n", left, "", o->help);
        } else {
            fprintf(out, "  %-28s  %s\n", left, o->help);
        }
    }
}

void cmd_print_usage(const cmd_def *def, FILE *out)
{
    fprintf(out, "usage: mar %s %s\n", def->name, def->usage);
}

int cmd_usage_error(const cmd_def *def, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = mar_xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *esc = mar_str_escape(msg);
    fprintf(stderr, "mar: %s\n", esc);
    cmd_print_usage(def, stderr);
    return MAR_EUSAGE;
}

void cmd_print_help(const cmd_def *def, FILE *out)
{
    cmd_print_usage(def, out);
    fprintf(out, "\n%s.\n", def->summary);
    if (def->description) {
        fprintf(out, "\n%s\n", def->description);
    }
    if (def->n_opts) {
        fprintf(out, "\nOptions:\n");
        print_opt_table(def->opts, def->n_opts, out);
    }
    fprintf(out, "\nGlobal options:\n");
    print_opt_table(global_opts, MAR_ARRAY_SIZE(global_opts), out);
    fprintf(out, "\nExit status: 0 ok, 2 usage, 3 not found, 4 authentication, 5 network,\n"
                 "6 integrity, 7 unsupported, 8 rate limit, 9 local storage, 1 other.\n");
}

static void print_main_help(FILE *out)
{
    fprintf(out, "usage: mar [GLOBAL OPTIONS] VERB [OPTIONS] [ARGS]\n\n"
                 "mar shows which platforms container images really offer and how each would\n"
                 "run on this machine (native, QEMU user mode or Rosetta through binfmt_misc).\n\n"
                 "Verbs:\n");
    for (size_t i = 0; i < MAR_ARRAY_SIZE(commands); i++) {
        fprintf(out, "  %-18s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\nGlobal options:\n");
    print_opt_table(global_opts, MAR_ARRAY_SIZE(global_opts), out);
    fprintf(out, "  %-28s  %s\n", "    --version", "show the version");
    fprintf(out, "\nRun 'mar help VERB' or 'mar VERB --help' for a verb's options.\n");
}

static int cmd_help(const cmd_def *def, cmd_args *args)
{
    (void)def;
    if (args->pos.n == 0) {
        print_main_help(stdout);
        return 0;
    }
    _cleanup_free_ char *name = args->pos.n > 1
                                        ? mar_xasprintf("%s %s", args->pos.v[0], args->pos.v[1])
                                        : mar_xstrdup(args->pos.v[0]);
    const cmd_def *d = find_command(name);
    if (!d && args->pos.n == 1 && is_noun(name)) {
        print_noun_help(name, stdout);
        return 0;
    }
    if (!d) {
        fprintf(stderr, "mar: unknown verb '%s'\n", name);
        print_main_help(stderr);
        return MAR_EUSAGE;
    }
    cmd_print_help(d, stdout);
    return 0;
}

static int cmd_version(const cmd_def *def, cmd_args *args)
{
    (void)def;
    (void)args;
    printf("mar %s\n", MAR_VERSION);
    return 0;
}

void cmd_args_release(cmd_args *a)
{
    for (size_t i = 0; i < MAR_ARRAY_SIZE(a->list); i++) {
        mar_strv_release(&a->list[i]);
    }
    mar_strv_release(&a->pos);
}

static int find_opt(const cmd_args *a, const char *name)
{
    for (size_t i = 0; i < a->n_opts; i++) {
        if (strcmp(a->opts[i]->name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *cmd_value(const cmd_args *a, const char *name)
{
    int i = find_opt(a, name);
    return i < 0 ? NULL : a->value[i];
}

bool cmd_flag(const cmd_args *a, const char *name)
{
    int i = find_opt(a, name);
    return i >= 0 && a->count[i] > 0;
}

const mar_strv *cmd_list(const cmd_args *a, const char *name)
{
    int i = find_opt(a, name);
    return i < 0 ? NULL : &a->list[i];
}

int cmd_parse(const cmd_def *def, int argc, char **argv, cmd_args *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    for (size_t i = 0; i < def->n_opts && ret->n_opts < MAR_ARRAY_SIZE(ret->opts); i++) {
        ret->opts[ret->n_opts++] = &def->opts[i];
    }
    for (size_t i = 0; i < MAR_ARRAY_SIZE(global_opts); i++) {
        ret->opts[ret->n_opts++] = &global_opts[i];
    }
    struct option lopts[MAR_ARRAY_SIZE(ret->opts) + 1];
    char shorts[3 * MAR_ARRAY_SIZE(ret->opts) + 3];
    size_t sl = 0;
    /* '+': stop at the first positional where the verb takes a command line of its own. '-' is
     * not used, ':' makes missing arguments distinguishable. */
    if (def->stop_at_positional) {
        shorts[sl++] = '+';
    }
    shorts[sl++] = ':';
    for (size_t i = 0; i < ret->n_opts; i++) {
        const cmd_opt *o = ret->opts[i];
        lopts[i] =
                (struct option){o->name, o->kind == CMD_OPT_FLAG ? no_argument : required_argument,
                                NULL, (int)(256 + i)};
        if (o->short_name) {
            shorts[sl++] = o->short_name;
            if (o->kind != CMD_OPT_FLAG) {
                shorts[sl++] = ':';
            }
        }
    }
    lopts[ret->n_opts] = (struct option){0};
    shorts[sl] = '\0';

    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, shorts, lopts, NULL);
        if (c == -1) {
            break;
        }
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            cmd_args_release(ret);
            if (c == ':') {
                return mar_err_set(err, MAR_EUSAGE, 0, "option '%s' needs a value", bad);
            }
            return mar_err_set(err, MAR_EUSAGE, 0, "unknown option '%s' for '%s'", bad, def->name);
        }
        size_t idx;
        if (c >= 256) {
            idx = (size_t)(c - 256);
        } else {
            for (idx = 0; idx < ret->n_opts && ret->opts[idx]->short_name != c; idx++) {
            }
        }
        if (idx >= ret->n_opts) {
            cmd_args_release(ret);
            return mar_err_set(err, MAR_EUSAGE, 0, "unknown option for '%s'", def->name);
        }
        ret->count[idx]++;
        if (ret->opts[idx]->kind == CMD_OPT_VALUE) {
            ret->value[idx] = optarg;
        } else if (ret->opts[idx]->kind == CMD_OPT_LIST) {
            mar_strv_push(&ret->list[idx], optarg);
        }
    }
    for (int i = optind; i < argc; i++) {
        mar_strv_push(&ret->pos, argv[i]);
    }
    if (cmd_flag(ret, "help")) {
        return 0;
    }
    if ((int)ret->pos.n < def->min_args ||
        (def->max_args >= 0 && (int)ret->pos.n > def->max_args)) {
        cmd_args_release(ret);
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s' takes %s", def->name, def->usage);
    }
    return 0;
}

static const cmd_opt *global_by_long(const char *name, size_t len)
{
    for (size_t i = 0; i < MAR_ARRAY_SIZE(global_opts); i++) {
        if (strlen(global_opts[i].name) == len && strncmp(global_opts[i].name, name, len) == 0) {
            return &global_opts[i];
        }
    }
    return NULL;
}

static const cmd_opt *global_by_short(char c)
{
    for (size_t i = 0; i < MAR_ARRAY_SIZE(global_opts); i++) {
        if (c && global_opts[i].short_name == c) {
            return &global_opts[i];
        }
    }
    return NULL;
}

/* One global option given before the verb, from the global option table: "--name",
 * "--name=VALUE", "--name VALUE", "-c", "-cVALUE", "-c VALUE" or a cluster of short flags. It is
 * pushed to `pre` as "--name" [VALUE] for the verb's own parser, so an option has the same effect
 * on either side of the verb. Returns the index of the last argument used, or -1 on a usage
 * error (printed). */
static int take_global(int argc, char **argv, int i, mar_strv *pre)
{
    const char *a = argv[i];
    if (a[1] == '-') {
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        const cmd_opt *o = global_by_long(name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o || (eq && o->kind == CMD_OPT_FLAG)) {
            fprintf(stderr, "mar: unknown global option '%s'\n", a);
            return -1;
        }
        mar_strv_push_take(pre, mar_xasprintf("--%s", o->name));
        if (o->kind == CMD_OPT_FLAG) {
            return i;
        }
        if (eq) {
            mar_strv_push(pre, eq + 1);
            return i;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "mar: global option '%s' needs a value\n", a);
            return -1;
        }
        mar_strv_push(pre, argv[i + 1]);
        return i + 1;
    }
    for (const char *p = a + 1; *p; p++) {
        const cmd_opt *o = global_by_short(*p);
        if (!o) {
            fprintf(stderr, "mar: unknown global option '-%c'\n", *p);
            return -1;
        }
        mar_strv_push_take(pre, mar_xasprintf("--%s", o->name));
        if (o->kind == CMD_OPT_FLAG) {
            continue;
        }
        if (p[1]) {
            mar_strv_push(pre, p + 1);
            return i;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "mar: global option '-%c' needs a value\n", *p);
            return -1;
        }
        mar_strv_push(pre, argv[i + 1]);
        return i + 1;
    }
    return i;
}

int cmd_main(int argc, char **argv)
{
    /* Global options may come before the verb: each is handed to the verb's parser, which knows
     * every global option too (docs/mar.1.md GLOBAL OPTIONS). */
    int i = 1;
    mar_strv pre = MAR_STRV_INIT;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("mar %s\n", MAR_VERSION);
            mar_strv_release(&pre);
            return 0;
        }
        int last = strcmp(argv[i], "--") == 0 ? -1 : take_global(argc, argv, i, &pre);
        if (last < 0) {
            if (strcmp(argv[i], "--") == 0) {
                fprintf(stderr, "mar: unknown global option '--'\n");
            }
            fprintf(stderr,
                    "usage: mar [GLOBAL OPTIONS] VERB [OPTIONS] [ARGS]; see 'mar --help'\n");
            mar_strv_release(&pre);
            return MAR_EUSAGE;
        }
        i = last;
    }
    if (i >= argc) {
        bool help = mar_strv_contains(&pre, "--help");
        print_main_help(help ? stdout : stderr);
        mar_strv_release(&pre);
        return help ? 0 : MAR_EUSAGE;
    }
    if (strcmp(argv[i], "completion") == 0) {
        mar_strv_release(&pre);
        return cmd_completion(argc - i, argv + i);
    }
    const cmd_def *def = find_command(argv[i]);
    if (!def && is_noun(argv[i])) {
        if (i + 1 >= argc || strcmp(argv[i + 1], "--help") == 0 || strcmp(argv[i + 1], "-h") == 0) {
            bool help = i + 1 < argc || mar_strv_contains(&pre, "--help");
            print_noun_help(argv[i], help ? stdout : stderr);
            mar_strv_release(&pre);
            return help ? 0 : MAR_EUSAGE;
        }
        _cleanup_free_ char *two = mar_xasprintf("%s %s", argv[i], argv[i + 1]);
        def = find_command(two);
        if (!def) {
            fprintf(stderr, "mar: unknown verb '%s'\n", two);
            print_noun_help(argv[i], stderr);
            mar_strv_release(&pre);
            return MAR_EUSAGE;
        }
        i++;
    }
    if (!def) {
        fprintf(stderr, "mar: unknown verb '%s'\n", argv[i]);
        fprintf(stderr, "usage: mar [GLOBAL OPTIONS] VERB [OPTIONS] [ARGS]; see 'mar --help'\n");
        mar_strv_release(&pre);
        return MAR_EUSAGE;
    }
    /* Re-assemble: verb, the global options given before it, then its own arguments. */
    mar_strv av = MAR_STRV_INIT;
    mar_strv_push(&av, argv[i]);
    for (size_t k = 0; k < pre.n; k++) {
        mar_strv_push(&av, pre.v[k]);
    }
    for (int k = i + 1; k < argc; k++) {
        mar_strv_push(&av, argv[k]);
    }
    mar_strv_release(&pre);

    cmd_args args;
    mar_err *err = NULL;
    int rc = cmd_parse(def, (int)av.n, av.v, &args, &err);
    if (rc < 0) {
        rc = cmd_usage_error(def, "%s", err->msg);
        mar_err_free(err);
        mar_strv_release(&av);
        return rc;
    }
    args.raw = av.v + 1;
    args.n_raw = av.n - 1;
    if (cmd_flag(&args, "help")) {
        cmd_print_help(def, stdout);
        cmd_args_release(&args);
        mar_strv_release(&av);
        return 0;
    }
    cmd_diag_init(cmd_flag(&args, "debug"), cmd_flag(&args, "quiet"));
    rc = def->fn(def, &args);
    cmd_esc_release();
    cmd_args_release(&args);
    mar_strv_release(&av);
    return rc;
}

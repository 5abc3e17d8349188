#!/bin/bash
# bench/target-registry.sh DIR: a Debian docker-registry on loopback that a benchmark writes into,
# on a fixed port so that DIR/reset.sh can restart it empty before every run (hyperfine's
# --prepare). Writes DIR/target.yml and DIR/reset.sh and prints the port; DIR/reset.sh starts
# (or restarts) it, and the caller stops it with `kill $(cat DIR/target.pid)`.
set -euo pipefail
bed=$1
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$bed/target.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $bed/target
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
EOF
cat >"$bed/reset.sh" <<EOF
#!/bin/bash
set -e
if [ -f "$bed/target.pid" ]; then
    pid=\$(cat "$bed/target.pid")
    kill "\$pid" 2>/dev/null || true
    while kill -0 "\$pid" 2>/dev/null; do sleep 0.05; done
fi
rm -rf "$bed/target"
setsid docker-registry serve "$bed/target.yml" >"$bed/target.log" 2>&1 </dev/null &
echo \$! >"$bed/target.pid"
for _ in \$(seq 1 200); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && exit 0
    sleep 0.05
done
exit 1
EOF
chmod +x "$bed/reset.sh"
echo "$port"

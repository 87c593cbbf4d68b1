#!/usr/bin/env bash
# A one-host Slurm cluster for development and CI: munge, slurmctld and one
# slurmd (this host) on loopback, all under $PADDOCK_SLURM_DIR. Needs root.
# Debian's Slurm 22.05; daemons are started by PID (packages never
# auto-start them here) and stopped by PID.
#
#   scripts/dev-slurm.sh start   install if needed, (re)configure, start, wait until idle
#   scripts/dev-slurm.sh stop    stop what start started
#   scripts/dev-slurm.sh env     print `export SLURM_CONF=...`
set -euo pipefail
BASE=${PADDOCK_SLURM_DIR:-/tmp/paddock-slurm}
export SLURM_CONF=$BASE/etc/slurm.conf
PIDS=$BASE/run/pids

stop_all() {
  [ -f "$PIDS" ] || return 0
  while read -r _ pid; do kill "$pid" 2>/dev/null || true; done < "$PIDS"
  for _ in $(seq 50); do
    alive=0; while read -r _ pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$PIDS"
    [ $alive = 0 ] && break; sleep 0.2
  done
  rm -f "$PIDS"
}

case "${1:-start}" in
  stop) stop_all; exit 0 ;;
  env) echo "export SLURM_CONF=$SLURM_CONF"; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac

bash "$(dirname "$0")/deps.sh" slurm
mkdir -p "$BASE/run"
stop_all

# munge: the default socket, shared by every Slurm command on the host.
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F --num-threads=4 >/dev/null 2>&1 &
  echo "munged $!" >> "$PIDS"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

HOST=$(hostname -s)
mkdir -p "$BASE"/{etc,state,spool,log}
chown slurm:slurm "$BASE/state" "$BASE/log"
chmod 755 "$BASE" "$BASE/etc" "$BASE/run"
MEM=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p'); MEM=$((MEM*8/10))
cat > "$SLURM_CONF" <<CONF
ClusterName=paddock-dev
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/%n
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd-%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd-%n.log
CommunicationParameters=NoInAddrAny
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
ReturnToService=2
SlurmdTimeout=30
MinJobAge=300
MaxJobCount=100000
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

/usr/sbin/slurmctld -D -i > "$BASE/log/slurmctld.out" 2>&1 &
echo "slurmctld $!" >> "$PIDS"
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
mkdir -p "$BASE/spool/$HOST"
/usr/sbin/slurmd -D -N "$HOST" > "$BASE/log/slurmd-$HOST.out" 2>&1 &
echo "slurmd $!" >> "$PIDS"
for _ in $(seq 150); do
  sinfo -h -N -t idle -o %N 2>/dev/null | grep -q . && break; sleep 0.2
done
sinfo -h -N -t idle -o %N | grep -q . || { echo "slurm did not come up; see $BASE/log" >&2; exit 1; }
echo "slurm is up: export SLURM_CONF=$SLURM_CONF"

#!/usr/bin/env bash
# A throwaway one-node Ceph cluster for tests and the fleet bench: one monitor, one memstore
# OSD and one RADOS Gateway (S3) on 127.0.0.1, from Debian's ceph 16 packages, no systemd and
# no cephadm. RGW answers S3 about 15 s after `start`.
#
#   apt-get install -y --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw ceph-common curl
#   D=$(mktemp -d) scripts/services/ceph-rgw.sh start   # prints endpoint=… access_key=… secret_key=…
#   D=<same dir> scripts/services/ceph-rgw.sh stop
#
# Ports: RGW_PORT and MON_PORT (default: free ones). Keys: RGW_ACCESS_KEY / RGW_SECRET_KEY.
# memstore keeps everything in memory (MEMSTORE_BYTES, default 2 GiB) and is slow (a few MB/s on
# 2 cores): keep test objects small. cephx stays on: with auth "none" this RGW never logs in
# to the monitor.
set -euo pipefail
D=${D:?set D to a scratch directory}
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
stop() {
  local f p
  for f in rgw osd mon; do p=$(cat "$D/$f.pid" 2>/dev/null) || continue; kill "$p" 2>/dev/null || true; done
  for _ in $(seq 20); do
    local alive=0
    for f in rgw osd mon; do p=$(cat "$D/$f.pid" 2>/dev/null) || continue; kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.25
  done
  for f in rgw osd mon; do p=$(cat "$D/$f.pid" 2>/dev/null) || continue; kill -9 "$p" 2>/dev/null || true; rm -f "$D/$f.pid"; done
}
case "${1:-start}" in stop) stop; exit 0 ;; start) ;; *) echo "usage: $0 start|stop" >&2; exit 2 ;; esac
mkdir -p "$D"
[ -z "$(ls -A "$D")" ] || { echo "D must be an empty dir" >&2; exit 1; }
for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl; do
  command -v "$b" >/dev/null || { echo "missing $b (apt-get install ceph-mon ceph-osd ceph-mgr radosgw ceph-common curl)" >&2; exit 1; }
done
PORT=${RGW_PORT:-$(free_port)}; MON_PORT=${MON_PORT:-$(free_port)}
AK=${RGW_ACCESS_KEY:-RGWTESTACCESSKEY}; SK=${RGW_SECRET_KEY:-RGWTESTSECRETKEY0123456789}
mkdir -p "$D"/{log,run,mon.a,osd.0,rgw}
FSID=$(cat /proc/sys/kernel/random/uuid)
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
ms bind ipv6 = false
auth allow insecure global id reclaim = false
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
keyring = $D/\$name.keyring
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES:-2147483648}
mon data = $D/mon.\$id
osd data = $D/osd.\$id
[client.rgw.s3sse]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $D/rgw
CONF
C=(-c "$D/ceph.conf")
ceph-authtool --create-keyring "$D/mon.a.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$D/client.admin.keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$D/mon.a.keyring" --import-keyring "$D/client.admin.keyring" >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap" --keyring "$D/mon.a.keyring"
setsid ceph-mon "${C[@]}" -i a -f >"$D/log/mon.out" 2>&1 < /dev/null & echo $! > "$D/mon.pid"
wait_for() { local what=$1 n=$2; shift 2; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done; echo "ceph-rgw.sh: $what did not come up (logs in $D/log)" >&2; stop; exit 1; }
wait_for monitor 120 ceph "${C[@]}" -s
OSD_UUID=$(cat /proc/sys/kernel/random/uuid); OSD_KEY=$(ceph-authtool --gen-print-key)
OSD_ID=$(echo "{\"cephx_secret\": \"$OSD_KEY\"}" | ceph "${C[@]}" osd new "$OSD_UUID" -i -)
ceph-authtool --create-keyring "$D/osd.$OSD_ID.keyring" --name "osd.$OSD_ID" --add-key "$OSD_KEY" >/dev/null
ceph-osd "${C[@]}" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" 2>>"$D/log/osd-mkfs.err"
setsid ceph-osd "${C[@]}" -i "$OSD_ID" -f >"$D/log/osd.out" 2>&1 < /dev/null & echo $! > "$D/osd.pid"
osd_up() { ceph "${C[@]}" osd stat 2>/dev/null | grep -q '1 up'; }
wait_for OSD 120 osd_up
ceph "${C[@]}" auth get-or-create client.rgw.s3sse mon 'allow rw' osd 'allow rwx' -o "$D/client.rgw.s3sse.keyring"
setsid radosgw "${C[@]}" -n client.rgw.s3sse -f >"$D/log/rgw.out" 2>&1 < /dev/null & echo $! > "$D/rgw.pid"
wait_for RGW 240 curl -s -o /dev/null "http://127.0.0.1:$PORT/"
radosgw-admin "${C[@]}" user create --uid=s3sse --display-name=s3sse --access-key="$AK" --secret="$SK" >/dev/null
echo "$PORT" > "$D/port"
echo "endpoint=http://127.0.0.1:$PORT access_key=$AK secret_key=$SK"

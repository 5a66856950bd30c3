# A guest's disk loop, for the migration and snapshot tests: block K%256 of
# /dev/vda gets "disk-block-K" (padded to 4 KiB by conv=sync), written and
# read back around the page cache, one every 2 s, printing "@disk: n=K ok".
k=0
while :; do
	k=$((k + 1))
	want=$(printf 'disk-block-%08d' $k)
	printf %s "$want" | dd of=/dev/vda bs=4096 seek=$((k % 256)) conv=sync oflag=direct 2>/dev/null
	got=$(dd if=/dev/vda bs=4096 skip=$((k % 256)) count=1 iflag=direct 2>/dev/null | head -c 19)
	if [ "$got" = "$want" ]; then echo "@disk: n=$k ok"; else echo "@disk: n=$k FAIL read '$got'"; fi
	sleep 2
done

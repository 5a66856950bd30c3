/*
 * Where a migration stream goes or comes from, as QEMU's URIs name it:
 *   file:PATH[,offset=N]  exec:CMD  fd:NAME  tcp:HOST:PORT  unix:PATH
 * Every channel is a file descriptor. An outgoing file is written under a
 * temporary name and renamed over PATH only once complete and synced, so an
 * interrupted save never leaves a file that looks valid.
 */
#pragma once
#include <glib.h>
#include <stdbool.h>

typedef enum { MIG_CHANNEL_OUT, MIG_CHANNEL_IN } MigChannelDirection;

typedef struct MigChannel MigChannel;

/*
 * Open @uri. @fd is the descriptor fd:NAME names, looked up by the caller
 * (-1 for other URIs). An incoming tcp:/unix: channel listens now and
 * accepts in mig_channel_accept. Errors name the URI.
 */
MigChannel *mig_channel_open(const char *uri, MigChannelDirection dir, int fd, GError **err);
/* Incoming sockets: block until the source connects (a no-op for the others). */
bool mig_channel_accept(MigChannel *ch, GError **err);
int mig_channel_fd(MigChannel *ch);
const char *mig_channel_uri(MigChannel *ch);
/* Make blocked and later reads and writes fail at once (cancel); any thread. */
void mig_channel_shutdown(MigChannel *ch);
/*
 * Close and free. With @complete, an outgoing file is synced and renamed
 * into place and an exec: command must exit 0; without it, the temporary
 * file is removed. False (with @err) if completing failed.
 */
bool mig_channel_close(MigChannel *ch, bool complete, GError **err);

//! Ports added and removed while a worker runs (a Pod's veth attached or detached).
//!
//! The control side owns a [`PortControl`], the worker the matching [`PortCommands`]: two
//! bounded SPSC rings (`rtrb`), commands one way and replies the other. The worker looks at
//! its command ring once per iteration, between bursts (one atomic load when it is empty),
//! and applies a command whole before the next burst: a port is never half-added from the
//! packet path's point of view. The control side waits for the reply, so `xvs/add-port` and
//! `xvs/del-port` complete synchronously for their caller.
//!
//! # Thread safety
//! Each ring has one producer and one consumer. Opening a port (an AF_XDP socket bound on the
//! worker's UMEM, its fill ring filled from the worker's pool) runs on the worker's thread,
//! inside the command, because the pool belongs to that thread; so the worker pauses its
//! ports for the few milliseconds a socket setup takes, once per added port. Commands and
//! replies are the only things that allocate on the worker's thread, and only when one is
//! applied.

use crate::worker::EnginePort;
use rtrb::{Consumer, Producer, RingBuffer};
use std::time::{Duration, Instant};
use xvs_io::{DeferredRelease, FramePool};

/// Builds a port on the worker's thread, on the worker's pool (`Err`: why it could not).
pub type PortOpener = Box<dyn FnOnce(&mut FramePool) -> Result<EnginePort, String> + Send>;

/// What the control side asks a worker to do.
pub enum PortCommand {
    /// Open a port with this opener and start polling it.
    Add(PortOpener),
    /// Stop polling the port with this OpenFlow number, give its frames back to the pool and
    /// close it.
    Remove(u32),
}

impl std::fmt::Debug for PortCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortCommand::Add(_) => f.write_str("Add(..)"),
            PortCommand::Remove(ofport) => write!(f, "Remove({ofport})"),
        }
    }
}

/// The worker's answer to a [`PortCommand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortReply {
    /// The port is polled, at this index of the worker's port list.
    Added {
        /// Its OpenFlow number.
        ofport: u32,
        /// Its index in the worker's port list.
        index: usize,
    },
    /// The port is gone; `frames_lost` frames could not be taken back from it (normally 0;
    /// when its close was deferred, the worker counts losses in its frame gauges instead).
    Removed {
        /// Its OpenFlow number.
        ofport: u32,
        /// Frames that stayed with the kernel or the device.
        frames_lost: usize,
    },
    /// Nothing changed, for this reason.
    Failed(String),
}

/// Why a command did not get a reply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortCtlError {
    /// The worker has not taken earlier commands yet (it is stuck or stopped).
    #[error("worker's port command queue is full")]
    QueueFull,
    /// The worker did not answer in time; the command may still be applied later.
    #[error("worker did not answer within {0:?}")]
    Timeout(Duration),
    /// The worker has gone (its end of the queue was dropped).
    #[error("worker has stopped")]
    WorkerGone,
}

/// Commands pending at once per worker (the control side sends one and waits).
const QUEUE: usize = 4;

struct Request {
    seq: u64,
    command: PortCommand,
}

struct Reply {
    seq: u64,
    reply: PortReply,
    /// How long the worker spent applying the command (its ports were not polled meanwhile).
    paused: Duration,
    /// The slow part of a removal, done by the control side (dropping it).
    release: Option<DeferredRelease>,
}

/// The control side's end.
pub struct PortControl {
    commands: Producer<Request>,
    replies: Consumer<Reply>,
    next_seq: u64,
    last_pause: Duration,
}

impl std::fmt::Debug for PortControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortControl")
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

/// The worker's end (give it to [`Worker::set_port_commands`](crate::Worker::set_port_commands)).
pub struct PortCommands {
    commands: Consumer<Request>,
    replies: Producer<Reply>,
}

impl std::fmt::Debug for PortCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortCommands").finish_non_exhaustive()
    }
}

/// A command queue and its reply queue.
pub fn port_queue() -> (PortControl, PortCommands) {
    let (commands, command_rx) = RingBuffer::new(QUEUE);
    let (reply_tx, replies) = RingBuffer::new(QUEUE);
    (
        PortControl {
            commands,
            replies,
            next_seq: 1,
            last_pause: Duration::ZERO,
        },
        PortCommands {
            commands: command_rx,
            replies: reply_tx,
        },
    )
}

/// How often [`PortControl::call`] looks for the reply.
const REPLY_POLL: Duration = Duration::from_micros(200);

impl PortControl {
    /// Sends `command` and waits up to `timeout` for the worker's reply. Replies to earlier
    /// commands that timed out are skipped (matched by sequence number).
    pub fn call(
        &mut self,
        command: PortCommand,
        timeout: Duration,
    ) -> Result<PortReply, PortCtlError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.commands.is_abandoned() {
            return Err(PortCtlError::WorkerGone);
        }
        self.commands
            .push(Request { seq, command })
            .map_err(|_| PortCtlError::QueueFull)?;
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(r) = self.replies.pop() {
                if r.seq == seq {
                    self.last_pause = r.paused;
                    // A removed socket's release (the kernel waits for receive paths in
                    // flight) happens here, on the control thread, not in the worker.
                    drop(r.release);
                    return Ok(r.reply);
                }
            }
            if self.replies.is_abandoned() {
                return Err(PortCtlError::WorkerGone);
            }
            if Instant::now() >= deadline {
                return Err(PortCtlError::Timeout(timeout));
            }
            std::thread::sleep(REPLY_POLL);
        }
    }
}

impl PortControl {
    /// How long the worker paused its ports to apply the last answered command.
    pub fn last_pause(&self) -> Duration {
        self.last_pause
    }
}

impl PortCommands {
    /// True when a command waits (one atomic load).
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        !self.commands.is_empty()
    }

    /// Takes the next command with the token to answer it.
    pub(crate) fn next(&mut self) -> Option<(u64, PortCommand)> {
        self.commands.pop().ok().map(|r| (r.seq, r.command))
    }

    /// Answers command `seq` (a reply the control side stopped waiting for is dropped there).
    pub(crate) fn answer(
        &mut self,
        seq: u64,
        reply: PortReply,
        paused: Duration,
        release: Option<DeferredRelease>,
    ) {
        // The control side waits for each reply before sending again, so the ring has room;
        // if it had none, the caller would time out, which it reports (and a release that
        // could not be queued is done here, which is slow but correct).
        let _ = self.replies.push(Reply {
            seq,
            reply,
            paused,
            release,
        });
    }
}

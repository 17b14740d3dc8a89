//! Counters kept inside the engine, so that the demo, the benchmarks and the simulator
//! count the same things the same way.

use std::ops::AddAssign;

macro_rules! counters {
    ($( $(#[$doc:meta])* $field:ident, )*) => {
        /// What an engine has done since it started.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Counters {
            $( $(#[$doc])* pub $field: u64, )*
        }

        impl Counters {
            /// Name and value of every counter, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field),)*]
            }
        }

        impl AddAssign<&Counters> for Counters {
            fn add_assign(&mut self, other: &Counters) {
                $( self.$field += other.$field; )*
            }
        }
    };
}

counters! {
    /// Messages sent.
    messages_sent,
    /// Messages received.
    messages_received,
    /// Executions started (contractor side).
    executions,
    /// Tasks accepted for management (roots and subtasks).
    submitted,
    /// Subtasks created by contractors (subcontracting).
    subcontracts,
    /// Announcement rounds.
    announcements,
    /// Bids received.
    bids,
    /// Refusals received in answer to calls for proposals.
    refusals,
    /// Contracts made (awards, including directed ones and re-awards).
    contracts,
    /// Contracts that ended without a result and whose task was placed again.
    reassignments,
    /// Provisional awards (iterated auctions) handed back or turned down for an award
    /// with a higher premium; placed again from the bids already in hand.
    moved_awards,
    /// Awards the contractor turned down before starting (busy, not capable); placed again.
    declined_awards,
    /// Re-executions after a failure report or a rejected result (count against retry limits).
    retries,
    /// Leases that lapsed.
    lease_expiries,
    /// Results assessed by an outside verifier.
    verifications,
    /// Results rejected by assessment.
    rejected_results,
    /// Tasks completed.
    completed,
    /// Tasks failed.
    failed,
    /// Tasks cancelled.
    cancelled,
    /// Tasks expired.
    expired,
    /// Messages refused because they belong to an older contract epoch.
    stale_epoch,
    /// Messages refused for any other reason (expired, loop, unknown task, …).
    refused_messages,
    /// Local commands refused.
    refused_commands,
    /// Contracts handed back (contractor side).
    decommits,
    /// Duplicate result reports answered again without applying them twice.
    duplicate_reports,
    /// Tasks let go because another node owns their partition now.
    fenced,
}

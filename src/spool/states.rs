//! The lifecycle states of the index's jobs and outbox rows.

crate::stored_enum::stored_enum! {
    /// Where a job is.
    pub enum JobState {
        /// Started, not finished (a job found so at start-up was cut off by a stop).
        Running = "running",
        /// Its SEG was written and queued.
        Done = "done",
        /// It failed; `error` says why.
        Failed = "failed",
    }
}

crate::stored_enum::stored_enum! {
    /// Where one delivery of one instance to one destination is.
    pub enum DeliveryState {
        /// Due at `next_attempt_ms`.
        Pending = "pending",
        /// The destination acknowledged it.
        Delivered = "delivered",
        /// Given up (attempts spent, or a permanent refusal); an operator may re-send it.
        Dead = "dead",
    }
}

//! The pacers of one fan-out: RegisterTaskDefinition's and UpdateService's buckets
//! ([`autopilot::pacer::Pacer`], in-process copies of ECS's per-account token buckets).

pub use autopilot::pacer::Pacer;

pub struct Pacers {
    pub register: Pacer,
    pub update: Pacer,
}

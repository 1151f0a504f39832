//! Bytecode evaluation: the bundle compiled once into a regorus RVM program with one entry point
//! per decision point, run by virtual machines taken from a pool.
//!
//! The tree interpreter re-walks the AST and allocates its evaluation state on every call; the
//! VM runs a flat instruction stream over preallocated registers, about five times faster for
//! the default bundle. A VM holds only per-run state (registers, rule cache, the input), so one
//! VM serves many decisions in turn; the pool keeps one per concurrent caller instead of one per
//! decision. Its semantics differ from the interpreter's on malformed inputs
//! ([`crate::Evaluation::Bytecode`]), so by default it only runs inputs `crate::shape` accepts.

use std::sync::{Arc, Mutex, PoisonError};

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::Program;
use regorus::rvm::vm::RegoVM;
use regorus::utils::limits::ExecutionTimerConfig;

use crate::decision::DecisionPoint;

/// Instructions one decision may execute. The default bundle's decisions run a few hundred;
/// the wall-clock timer is the real limit, this only bounds a VM whose clock reads fail.
const MAX_INSTRUCTIONS: usize = 10_000_000;

/// Idle VMs kept for reuse; beyond this, VMs of a burst are dropped after their call.
const MAX_IDLE_VMS: usize = 64;

/// A bundle compiled to bytecode.
pub(crate) struct BytecodeEvaluator {
    compiled: regorus::CompiledPolicy,
    program: Arc<Program>,
    timer: ExecutionTimerConfig,
    idle: Mutex<Vec<RegoVM>>,
}

impl BytecodeEvaluator {
    /// Compiles the decision rules of a prepared `engine` (policies added and analysed). Fails
    /// when the bundle uses a construct the bytecode compiler does not support yet (`with`).
    pub(crate) fn compile(
        engine: &regorus::Engine,
        timer: ExecutionTimerConfig,
    ) -> Result<Self, String> {
        // Compiling resets some of the engine's evaluation settings: work on a copy.
        let mut engine = engine.clone();
        let entry: Arc<str> = Arc::from(DecisionPoint::ToolCall.rule());
        let compiled = engine
            .compile_with_entrypoint(&entry)
            .map_err(|e| e.to_string())?;
        let rules = DecisionPoint::ALL.map(DecisionPoint::rule);
        let program =
            Compiler::compile_from_policy(&compiled, &rules).map_err(|e| e.to_string())?;
        let evaluator = Self {
            compiled,
            program,
            timer,
            idle: Mutex::new(Vec::new()),
        };
        // A VM that cannot be set up now never will be: refuse the bundle here.
        let vm = evaluator.new_vm()?;
        evaluator.release(vm);
        Ok(evaluator)
    }

    fn new_vm(&self) -> Result<RegoVM, String> {
        let mut vm = RegoVM::new_with_policy(self.compiled.clone());
        vm.load_program(Arc::clone(&self.program));
        vm.set_data(regorus::Value::new_object())
            .map_err(|e| e.to_string())?;
        vm.set_execution_timer_config(Some(self.timer));
        vm.set_max_instructions(MAX_INSTRUCTIONS);
        Ok(vm)
    }

    fn release(&self, vm: RegoVM) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_VMS {
            idle.push(vm);
        }
    }

    /// Evaluates `rule` (one of [`DecisionPoint::rule`]) on `input`.
    pub(crate) fn eval(&self, rule: &str, input: regorus::Value) -> Result<regorus::Value, String> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut vm = match pooled {
            Some(vm) => vm,
            None => self.new_vm()?,
        };
        vm.set_input(input);
        let result = vm
            .execute_entry_point_by_name(rule)
            .map_err(|e| e.to_string());
        // A VM that failed mid-run may hold half-updated state: only clean runs go back.
        if result.is_ok() {
            // Do not keep the caller's input alive in an idle VM.
            vm.set_input(regorus::Value::Null);
            self.release(vm);
        }
        result
    }
}

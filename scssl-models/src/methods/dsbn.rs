//! Domain-specific BatchNorm (DSBN) for the two-view methods (methods.md §5.11; scSSL-Bench's
//! `dsbn` branch, `DSBNBackbone`): the backbone's first BatchNorm (width 128) is one module
//! per batch ("domain"), and the second BatchNorm is shared, applied either to each domain's
//! rows separately (the branch's behaviour, DIV-31) or to the whole mini-batch.
//!
//! Documented choices where the branch crashes or is silent:
//! * **One cell of a domain in a training mini-batch** (the branch raises "Expected more than
//!   1 value per channel", DIV-30): that cell is normalised with its domain's running
//!   statistics, as in eval mode, and does not update them; the rest of the step is unchanged.
//! * **Inference** is in eval mode (the branch stays in train mode, DIV-16), each cell with its
//!   own domain's BatchNorm.
//! * **A batch that training never saw** (a query) is normalised by the mean of the training
//!   domains' BatchNorms: the average of their γ, β, running means and running variances. Each
//!   cell's embedding then depends on that cell alone, not on which other query cells are
//!   embedded with it.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::config::DsbnSecondNorm;
use crate::error::{ModelError, Result};
use crate::layers::{BatchNorm1d, Mlp, NamedTensor, Pass};

/// The rows of a mini-batch grouped by domain (ascending domain code).
#[derive(Debug, Clone)]
pub struct Domains<B: Backend> {
    /// `(domain, number of rows)` in grouped order.
    pub groups: Vec<(u32, usize)>,
    /// Row indices in grouped order.
    order: Tensor<B, 1, Int>,
    /// Position of each original row in the grouped order.
    inverse: Tensor<B, 1, Int>,
}

impl<B: Backend> Domains<B> {
    /// Groups rows by their domain code.
    pub fn new(codes: &[u32], device: &B::Device) -> Self {
        let mut by: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, &c) in codes.iter().enumerate() {
            by.entry(c).or_default().push(i);
        }
        let order: Vec<i64> = by.values().flatten().map(|&i| i as i64).collect();
        let mut inverse = vec![0i64; codes.len()];
        for (pos, &row) in order.iter().enumerate() {
            inverse[row as usize] = pos as i64;
        }
        let n = codes.len();
        Domains {
            groups: by.iter().map(|(&d, rows)| (d, rows.len())).collect(),
            order: Tensor::from_data(TensorData::new(order, [n]), device),
            inverse: Tensor::from_data(TensorData::new(inverse, [n]), device),
        }
    }
}

/// One BatchNorm per training domain.
#[derive(Module, Debug)]
pub struct DomainBatchNorm<B: Backend> {
    /// The norms, indexed by domain code.
    pub norms: Vec<BatchNorm1d<B>>,
}

/// BatchNorm on `x` in `pass`'s mode, except that a single row in train mode is normalised
/// with the running statistics and leaves them untouched.
fn norm_rows<B: Backend>(bn: &mut BatchNorm1d<B>, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
    if pass.train && x.dims()[0] < 2 {
        bn.forward(
            x,
            Pass {
                train: false,
                ..pass
            },
        )
    } else {
        bn.forward(x, pass)
    }
}

/// Applies `f` to each domain's rows of `x` (in grouped order) and concatenates the results.
fn per_group<B: Backend>(
    x: Tensor<B, 2>,
    groups: &[(u32, usize)],
    mut f: impl FnMut(u32, Tensor<B, 2>) -> Result<Tensor<B, 2>>,
) -> Result<Tensor<B, 2>> {
    let d = x.dims()[1];
    let mut parts = Vec::with_capacity(groups.len());
    let mut start = 0;
    for &(domain, len) in groups {
        parts.push(f(domain, x.clone().slice([start..start + len, 0..d]))?);
        start += len;
    }
    Ok(Tensor::cat(parts, 0))
}

impl<B: Backend> DomainBatchNorm<B> {
    /// `n_domains` affine norms of width `d` (PyTorch defaults).
    pub fn new(n_domains: usize, d: usize, device: &B::Device) -> Self {
        DomainBatchNorm {
            norms: (0..n_domains)
                .map(|_| BatchNorm1d::new(d, true, device))
                .collect(),
        }
    }

    /// The mean of the domains' norms (for a domain training never saw).
    fn mean_norm(&self) -> Result<BatchNorm1d<B>> {
        let first = self
            .norms
            .first()
            .ok_or_else(|| ModelError::Inconsistent("DSBN without domains".into()))?;
        let k = self.norms.len() as f64;
        let avg = |get: &dyn Fn(&BatchNorm1d<B>) -> Option<Tensor<B, 1>>| -> Option<Tensor<B, 1>> {
            let mut acc: Option<Tensor<B, 1>> = None;
            for n in &self.norms {
                let v = get(n)?;
                acc = Some(match acc {
                    Some(a) => a.add(v),
                    None => v,
                });
            }
            acc.map(|a| a.div_scalar(k))
        };
        let param = |t: Option<Tensor<B, 1>>| t.map(|t| Param::initialized(ParamId::new(), t));
        let rm = avg(&|n| Some(n.running_mean.val()));
        let rv = avg(&|n| Some(n.running_var.val()));
        let (Some(rm), Some(rv)) = (param(rm), param(rv)) else {
            return Err(ModelError::Inconsistent("DSBN running statistics".into()));
        };
        Ok(BatchNorm1d {
            gamma: param(avg(&|n| n.gamma.as_ref().map(|g| g.val()))),
            beta: param(avg(&|n| n.beta.as_ref().map(|b| b.val()))),
            running_mean: rm,
            running_var: rv,
            momentum: first.momentum,
            eps: first.eps,
        })
    }

    /// Normalises rows in grouped order, each domain with its own norm. In train mode every
    /// domain must be a training domain; in eval mode an unknown one uses the mean norm.
    fn forward_grouped(
        &mut self,
        x: Tensor<B, 2>,
        groups: &[(u32, usize)],
        pass: Pass,
    ) -> Result<Tensor<B, 2>> {
        let known = self.norms.len();
        let mut fallback: Option<BatchNorm1d<B>> = None;
        per_group(x, groups, |domain, rows| {
            let d = domain as usize;
            if d < known {
                return Ok(norm_rows(&mut self.norms[d], rows, pass));
            }
            if pass.train {
                return Err(ModelError::Shape(format!(
                    "batch code {d} in training; the DSBN model has {known} domains"
                )));
            }
            if fallback.is_none() {
                fallback = Some(self.mean_norm()?);
            }
            let bn = fallback
                .as_mut()
                .ok_or_else(|| ModelError::Inconsistent("the mean DSBN norm".into()))?;
            Ok(bn.forward(rows, pass))
        })
    }

    /// θ_self ← m·θ_self + (1 − m)·θ_online for γ and β.
    pub(crate) fn ema(&mut self, online: &Self, m: f64) {
        for (t, o) in self.norms.iter_mut().zip(&online.norms) {
            t.ema(o, m);
        }
    }

    pub(crate) fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        for (d, n) in self.norms.iter().enumerate() {
            n.export(&format!("{prefix}.{d}"), out);
        }
    }

    pub(crate) fn import(
        &mut self,
        prefix: &str,
        store: &mut HashMap<String, NamedTensor>,
    ) -> Result<()> {
        for (d, n) in self.norms.iter_mut().enumerate() {
            n.import(&format!("{prefix}.{d}"), store)?;
        }
        Ok(())
    }
}

/// The DSBN backbone: Linear(G,128) → BN₁ of the row's domain → ReLU → Linear(128,h) → BN₂
/// (shared; per domain subset or on the whole batch). `encoder` is the backbone built without
/// its first BatchNorm; rows come back in their original order.
pub fn forward<B: Backend>(
    encoder: &mut Mlp<B>,
    norms: &mut DomainBatchNorm<B>,
    second: DsbnSecondNorm,
    x: Tensor<B, 2>,
    domains: &Domains<B>,
    pass: Pass,
) -> Result<Tensor<B, 2>> {
    let [first_block, second_block] = encoder.blocks.as_mut_slice() else {
        return Err(ModelError::Inconsistent(
            "the DSBN backbone's two blocks".into(),
        ));
    };
    let x = x.select(0, domains.order.clone());
    let h = first_block.linear.forward(x);
    let h = relu(norms.forward_grouped(h, &domains.groups, pass)?);
    let h = second_block.linear.forward(h);
    let bn = second_block
        .bn
        .as_mut()
        .ok_or_else(|| ModelError::Inconsistent("the backbone's second BatchNorm".into()))?;
    let h = match second {
        DsbnSecondNorm::SharedMixed => bn.forward(h, pass),
        DsbnSecondNorm::SharedPerSubset => {
            per_group(h, &domains.groups, |_, rows| Ok(norm_rows(bn, rows, pass)))?
        }
    };
    Ok(h.select(0, domains.inverse.clone()))
}

//! [`SupernetOps`] under burn's autodiff: each kernel is one node of the autodiff graph whose
//! backward step calls the matching backward kernel of the inner backend.

use burn::{
    backend::{
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        Autodiff,
    },
    tensor::{ops::FloatTensor, Tensor},
};
use fewshot_sdk::Activation;

use super::{from_prim, into_prim, ConvSpec, Kernels, PoolSpec, SupernetOps};

#[derive(Debug)]
struct ConvBackward;

impl<B: Kernels> Backward<B, 2> for ConvBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, ConvSpec);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, w, spec) = ops.state;
        let (dx, dw) = B::conv_backward(x, w, dy, spec, node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_w {
            grads.register::<B>(node.id, dw);
        }
    }
}

#[derive(Debug)]
struct BnBackward;

impl<B: Kernels> Backward<B, 1> for BnBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (y, inv_std) = ops.state;
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::bn_backward(y, inv_std, dy));
        }
    }
}

#[derive(Debug)]
struct PoolBackward;

impl<B: Kernels> Backward<B, 1> for PoolBackward {
    type State = (FloatTensor<B>, PoolSpec);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, spec) = ops.state;
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::pool_backward(x, dy, spec));
        }
    }
}

#[derive(Debug)]
struct ActBackward;

impl<B: Kernels> Backward<B, 1> for ActBackward {
    type State = (FloatTensor<B>, Activation);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, kind) = ops.state;
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::act_backward(kind, x, dy));
        }
    }
}

#[derive(Debug)]
struct GapBackward;

impl<B: Kernels> Backward<B, 1> for GapBackward {
    type State = [usize; 4];

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::gap_backward(dy, ops.state));
        }
    }
}

impl<B: Kernels, C: CheckpointStrategy> SupernetOps for Autodiff<B, C> {
    fn conv(x: Tensor<Self, 4>, w: Tensor<Self, 4>, spec: ConvSpec) -> Tensor<Self, 4> {
        let (x, w) = (into_prim(x), into_prim(w));
        let out = match ConvBackward.prepare::<C>([x.node.clone(), w.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::conv_forward(x.primitive.clone(), w.primitive.clone(), spec);
                prep.finish((x.primitive, w.primitive, spec), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv_forward(x.primitive, w.primitive, spec)),
        };
        from_prim(out)
    }

    fn batch_norm(x: Tensor<Self, 4>) -> Tensor<Self, 4> {
        let x = into_prim(x);
        let out = match BnBackward.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, _, inv_std) = B::bn_forward(x.primitive);
                prep.finish((y.clone(), inv_std), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::bn_forward(x.primitive).0),
        };
        from_prim(out)
    }

    fn pool(x: Tensor<Self, 4>, spec: PoolSpec) -> Tensor<Self, 4> {
        let x = into_prim(x);
        let out = match PoolBackward.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::pool_forward(x.primitive.clone(), spec);
                prep.finish((x.primitive, spec), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::pool_forward(x.primitive, spec)),
        };
        from_prim(out)
    }

    fn act(kind: Activation, x: Tensor<Self, 4>) -> Tensor<Self, 4> {
        let x = into_prim(x);
        let out = match ActBackward.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::act_forward(kind, x.primitive.clone());
                prep.finish((x.primitive, kind), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::act_forward(kind, x.primitive)),
        };
        from_prim(out)
    }

    fn global_pool(x: Tensor<Self, 4>) -> Tensor<Self, 2> {
        let dims = x.dims();
        let x = into_prim(x);
        let out = match GapBackward.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(dims, B::gap_forward(x.primitive)),
            OpsKind::UnTracked(prep) => prep.finish(B::gap_forward(x.primitive)),
        };
        from_prim(out)
    }
}

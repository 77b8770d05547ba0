use std::time::Instant;
use burn::backend::Flex;
use burn::tensor::{Tensor, Distribution};
use fewshot_core::kernels::{Kernels, ConvSpec, PoolSpec, into_prim};
use fewshot_sdk::Activation;

fn time<F: FnMut()>(name: &str, mut f: F) {
    f();
    let mut best = f64::MAX;
    for _ in 0..20 { let t = Instant::now(); f(); best = best.min(t.elapsed().as_secs_f64() * 1000.0); }
    println!("{name:<30} {:8.3} ms", best);
}

fn main() {
    let d = Default::default();
    for &(c, hw) in &[(8usize, 32usize), (16, 16), (32, 8)] {
        println!("== C={c} HW={hw}");
        let x = into_prim(Tensor::<Flex, 4>::random([c, 64, hw, hw], Distribution::Normal(0.0, 1.0), &d));
        let w3 = into_prim(Tensor::<Flex, 4>::random([c, c, 3, 3], Distribution::Normal(0.0, 0.1), &d));
        let w1 = into_prim(Tensor::<Flex, 4>::random([c, c, 1, 1], Distribution::Normal(0.0, 0.1), &d));
        let s3 = ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 1, relu_input: true };
        let s1 = ConvSpec { kernel: 1, stride: 1, padding: 0, groups: 1, relu_input: true };
        let pool = PoolSpec { average: true, kernel: 3, stride: 1, padding: 1, count_include_pad: false };
        time("conv3 fwd", || { Flex::conv_forward(x.clone(), w3.clone(), s3); });
        time("conv3 bwd", || { Flex::conv_backward(x.clone(), w3.clone(), x.clone(), s3); });
        time("conv1 fwd", || { Flex::conv_forward(x.clone(), w1.clone(), s1); });
        time("conv1 bwd", || { Flex::conv_backward(x.clone(), w1.clone(), x.clone(), s1); });
        let (y, _, inv) = Flex::bn_forward(x.clone());
        time("bn fwd", || { Flex::bn_forward(x.clone()); });
        time("bn bwd", || { Flex::bn_backward(y.clone(), inv.clone(), x.clone()); });
        time("pool fwd", || { Flex::pool_forward(x.clone(), pool); });
        time("pool bwd", || { Flex::pool_backward(x.clone(), x.clone(), pool); });
        time("relu fwd", || { Flex::act_forward(Activation::Relu, x.clone()); });
        time("relu bwd", || { Flex::act_backward(Activation::Relu, x.clone(), x.clone()); });
        time("add", || { let _ = burn::tensor::Tensor::<Flex,4>::from_primitive(burn::tensor::TensorPrimitive::Float(x.clone())) + burn::tensor::Tensor::<Flex,4>::from_primitive(burn::tensor::TensorPrimitive::Float(y.clone())); });
    }
}

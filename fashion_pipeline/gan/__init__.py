"""Full-body crops of the Pinterest images, the three DCGAN training sets, the DCGAN ablation and its report."""

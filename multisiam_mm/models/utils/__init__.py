'''Pure, batched building blocks shared by MultiSiam, DenseSiam and Odin.'''

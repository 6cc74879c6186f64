"""Images into batches: decoded once into a uint8 cache, augmented, batched, mixed on the device.

    images     decoding an image file, and the on-disk uint8 cache that decodes each file once
    loader     the Dataset over table rows, the seeded sampler, the DataLoaders (normalized on the device)
    augment    albumentations presets, the training and test-time transforms, the preview grid
    mixing     mixup and cutmix on the batch tensors
"""

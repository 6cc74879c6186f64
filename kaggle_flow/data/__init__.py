"""Images into batches: the uint8 cache, datasets and loaders, augmentation presets, mixup/cutmix."""
